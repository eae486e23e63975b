import { CsrfField, Field } from "./admin_layout.tsx";

/**
 * The sites whose pages may frame a shop's checkout and forms, as a form: on the console's shop page and in the
 * shop's own portal.
 */
export function EmbeddingCard(props: { action: string; csrf: string; value: string; error?: string }) {
  return (
    <section class="card">
      <h2>Embedding</h2>
      <p class="muted">
        Sites whose pages may show this shop's checkout and forms in a frame. Every other site, and every other page of
        ours, is refused.
      </p>
      <form method="post" action={props.action} class="stack narrow">
        <CsrfField token={props.csrf} />
        <Field
          label="Sites (origins)"
          name="embedOrigins"
          value={props.value}
          hint="One per line (or space or comma separated), such as https://shop.example. Empty: no site may."
          error={props.error}
          multiline
        />
        <button type="submit">Save embedding sites</button>
      </form>
    </section>
  );
}
