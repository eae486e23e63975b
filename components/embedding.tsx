import { listFromField } from "../lib/shops.ts";
import { CsrfField, Field } from "./admin_layout.tsx";

/**
 * Asked before sites are taken away from a shop's embedding sites, naming them (`removed`; `{removed}` for the page's
 * script to fill in) and whose checkout stops there: in the browser's dialog, or on a page of its own without the
 * script.
 */
export function embedRemovalQuestion(removed: string, whose: string): string {
  return `Stop ${removed} from showing ${whose} checkout and forms? Buyers on those pages can no longer pay there.`;
}

/** The sites a person confirmed taking away, as the form sends them (see setEmbedOrigins); none before asked. */
export function embedRemovalConfirmed(form: Record<string, string>): string[] {
  return form.confirm === "yes" ? listFromField(form.removing) : [];
}

/**
 * The sites whose pages may frame a shop's checkout and forms, as a form: on the console's shop page and in the
 * shop's own portal. `saved` is the list as stored: a list sent that takes any of it away asks first (`whose`
 * checkout, in the question), by the page's script or else the server's confirmation page.
 */
export function EmbeddingCard(
  props: { action: string; csrf: string; value: string; saved: string[]; whose: string; error?: string },
) {
  return (
    <section class="card">
      <h2>Embedding</h2>
      <p class="muted">
        Sites whose pages may show this shop's checkout and forms in a frame. Every other site, and every other page of
        ours, is refused.
      </p>
      <form
        method="post"
        action={props.action}
        class="stack narrow"
        data-list="embedOrigins"
        data-saved={props.saved.join(" ")}
        data-confirm-removal={embedRemovalQuestion("{removed}", props.whose)}
      >
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
