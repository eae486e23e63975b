import type { ComponentChildren } from "preact";

const CONSOLE_NAV: readonly (readonly [string, string])[] = [
  ["/admin", "Overview"],
  ["/admin/shops", "Shops"],
  ["/admin/payments", "Payments"],
  ["/admin/forms", "Forms"],
  ["/admin/invoices", "Invoices"],
  ["/admin/deliveries", "Deliveries"],
  ["/admin/accounts", "Accounts"],
  ["/admin/operations", "Operations"],
  ["/admin/stats", "Stats"],
  ["/admin/audit", "Audit log"],
  ["/admin/operators", "Operators"],
  ["/internal", "Internal docs"],
];

/** The console's shell: navigation, sign-out, one stylesheet, one island bundle. */
export function AdminLayout(props: {
  title: string;
  path: string;
  email: string;
  csrf: string;
  children: ComponentChildren;
  /** The shop portal passes its own navigation, home and sign-out. */
  nav?: readonly (readonly [string, string])[];
  home?: string;
  signoutAction?: string;
}) {
  const nav = props.nav ?? CONSOLE_NAV;
  const home = props.home ?? "/admin";
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{`${props.title} · AimbrellaPay`}</title>
        <link rel="stylesheet" href="/static/style.css" />
        <link rel="stylesheet" href="/static/uplot.css" />
        <script type="module" src="/static/islands.js" defer />
      </head>
      <body class="console">
        <a class="skip" href="#content">Skip to content</a>
        <header class="topbar">
          <strong class="brand">AimbrellaPay</strong>
          <nav aria-label="Console">
            {nav.map(([href, label]) => (
              <a
                key={href}
                href={href}
                aria-current={(href === home ? props.path === href : props.path.startsWith(href)) ? "page" : undefined}
              >
                {label}
              </a>
            ))}
          </nav>
          <form method="post" action={props.signoutAction ?? "/admin/logout"} class="signout">
            <CsrfField token={props.csrf} />
            <span class="muted">{props.email}</span> <button type="submit" class="secondary small">Sign out</button>
          </form>
        </header>
        <main id="content" class="wide">
          <h1>{props.title}</h1>
          {props.children}
        </main>
      </body>
    </html>
  );
}

export function CsrfField({ token }: { token: string }) {
  return <input type="hidden" name="_csrf" value={token} />;
}

/** A labelled input with its error beside it. */
export function Field(props: {
  label: string;
  name: string;
  value?: string;
  error?: string;
  type?: "text" | "email" | "password" | "url" | "date" | "datetime-local" | "search";
  hint?: string;
  required?: boolean;
  autocomplete?: string;
  /** A list (say, twenty sites) reads better over a few lines; a line break counts as a separator. */
  multiline?: boolean;
}) {
  const id = `f-${props.name}`;
  const common = {
    required: props.required,
    autocomplete: props.autocomplete,
    // A page shown again for a mistake puts the keyboard (and a screen reader) on the first field at fault.
    autofocus: props.error ? true : undefined,
    "aria-invalid": props.error ? "true" as const : undefined,
    "aria-describedby": props.error ? `${id}-error` : props.hint ? `${id}-hint` : undefined,
  };
  return (
    <div class={props.error ? "field invalid" : "field"}>
      <label for={id}>{props.label}</label>
      {props.multiline ? <textarea id={id} name={props.name} rows={4} value={props.value ?? ""} {...common} /> : (
        <input
          id={id}
          name={props.name}
          {
            // Preact's input types are a union per type value; ours is one of the text-like ones.
            // deno-lint-ignore no-explicit-any
            ...{ type: (props.type ?? "text") as any }
          }
          value={props.value ?? ""}
          {...common}
        />
      )}
      {props.hint && !props.error && <small id={`${id}-hint`} class="muted">{props.hint}</small>}
      {props.error && <small id={`${id}-error`} class="error">{props.error}</small>}
    </div>
  );
}

/**
 * The question of a confirmation page, where the keyboard starts: read out first, and the page's button is the next
 * Tab (then Cancel), instead of the whole menu first. The question takes the focus, never the button, so an Enter
 * pressed on arrival confirms nothing.
 */
export function ConfirmQuestion({ children }: { children: ComponentChildren }) {
  return <div class="confirm-question" tabindex={-1} autofocus>{children}</div>;
}

/**
 * The button that carries out a destructive action: one that takes something away at once (money back to a buyer, a
 * cancel, a key, a shop, form or account switched off, a secret or an embedding site that stops working). It looks
 * the same wherever it is: on a confirmation page, or on a form whose question the page's script asks first. A button
 * that only leads to a confirmation (Refund…) or takes nothing away (replay, resend, enable) is not one.
 */
export function DestructiveButton(props: { children: ComponentChildren; small?: boolean }) {
  return <button type="submit" class={props.small ? "danger small" : "danger"}>{props.children}</button>;
}

/**
 * The confirmation step of a risky action when the page's script did not ask
 * (no JavaScript): the same form again, with confirm=yes and one button,
 * styled as destructive when pressing it takes something away (every caller
 * says which, so none is red by accident or plain by omission).
 */
export function ConfirmStep(props: {
  question: string;
  action: string;
  fields?: Record<string, string>;
  button: string;
  destructive: boolean;
  csrf: string;
  cancel: string;
  /** The way back's words, where "Cancel" would read as the action itself (cancelling an invoice). */
  cancelLabel?: string;
}) {
  return (
    <div class="card">
      <ConfirmQuestion>
        <p>
          <strong>{props.question}</strong>
        </p>
      </ConfirmQuestion>
      <form method="post" action={props.action} class="inline">
        <CsrfField token={props.csrf} />
        {Object.entries(props.fields ?? {}).map(([k, v]) => <input key={k} type="hidden" name={k} value={v} />)}
        <input type="hidden" name="confirm" value="yes" />
        {props.destructive
          ? <DestructiveButton>{props.button}</DestructiveButton>
          : <button type="submit">{props.button}</button>}
      </form>{" "}
      <a href={props.cancel}>{props.cancelLabel ?? "Cancel"}</a>
    </div>
  );
}

export function Flash(props: { kind: "ok" | "bad"; children: ComponentChildren }) {
  return <p class={`flash ${props.kind}`} role={props.kind === "bad" ? "alert" : "status"}>{props.children}</p>;
}

/** A time as operators read it everywhere in the console: always UTC, and labelled so. */
export function formatTime(ms: number | null | undefined): string {
  return ms ? new Date(ms).toISOString().replace("T", " ").slice(0, 19) + " UTC" : "—";
}
