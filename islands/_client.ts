/** Browser entry: hydrates every server-rendered island on the page with its serialized props. */
import { h, hydrate } from "preact";
import { islands } from "./mod.ts";
import { FRAMED_SUBMIT_HEADER } from "../lib/forms/types.ts";

for (const el of document.querySelectorAll<HTMLElement>("[data-island]")) {
  const component = islands[el.dataset.island as keyof typeof islands];
  if (!component) continue;
  // deno-lint-ignore no-explicit-any
  hydrate(h(component as any, JSON.parse(el.dataset.props ?? "{}")), el);
}

// Forms that start a risky action ask first (data-confirm: the question); the server asks again on its own page
// when this script did not run, so the answer travels as confirm=yes. A question names what the form will do with
// `{field}`: the field's value as chosen, a select's by its label (a shop's name, not its id). Slow actions
// (data-busy: the progress text) disable their button and say they are working, so a second click does not send
// them twice.
addEventListener("submit", (e) => {
  const form = e.target as HTMLFormElement;
  const { busy } = form.dataset;
  if (form.dataset.sent) return e.preventDefault();
  const question = form.dataset.confirmRemoval === undefined
    ? form.dataset.confirm && fillFields(form.dataset.confirm, form)
    : removalQuestion(form);
  if (question) {
    if (!confirm(question)) return e.preventDefault();
    hiddenField(form, "confirm").value = "yes";
  }
  if (busy === undefined) return;
  // Read before the button is disabled and relabelled.
  const framed = form.dataset.framedSubmit !== undefined && self.top !== self ? new FormData(form) : null;
  form.dataset.sent = "1";
  form.setAttribute("aria-busy", "true");
  const button = (e as SubmitEvent).submitter ?? form.querySelector("button");
  if (button instanceof HTMLButtonElement) {
    button.dataset.label = button.textContent ?? "";
    button.disabled = true;
    button.textContent = busy;
  }
  if (framed) {
    e.preventDefault();
    sendFromFrame(form, framed);
  }
});

/**
 * A buyer's form in a shop's frame (data-framed-submit) is sent from here: a mistake comes back into the frame, so the
 * buyer stays on the shop's page, and the payment then opens as the whole window. Without this script the form posts
 * to the whole window (target="_top"), which takes the buyer off the shop's page with the first mistake. Should the
 * request not get through, the plain post goes instead (the page's token names the same payment, so it cannot make a
 * second).
 */
async function sendFromFrame(form: HTMLFormElement, fields: FormData) {
  let res: Response;
  try {
    res = await fetch(form.action, {
      method: "POST",
      headers: { [FRAMED_SUBMIT_HEADER]: "1" },
      body: new URLSearchParams(fields as unknown as Record<string, string>),
    });
  } catch {
    return form.submit();
  }
  if ((res.headers.get("content-type") ?? "").startsWith("application/json")) {
    const { next } = await res.json() as { next: string };
    openAsWholePage(form, next);
    return;
  }
  // The page again with its messages (or any other page the submit answered): shown in the frame.
  const page = new DOMParser().parseFromString(await res.text(), "text/html");
  document.title = page.title;
  document.body.replaceWith(page.body);
  // Keyboard and screen-reader users go on where the answer is: the first field marked wrong, else its message.
  const next = document.querySelector<HTMLElement>("[aria-invalid=true]") ??
    document.querySelector<HTMLElement>("[role=alert]") ?? document.querySelector<HTMLElement>("h1");
  if (next && !next.matches("input, select, textarea, button, a")) next.tabIndex = -1;
  next?.focus();
}

/**
 * Opens where the submit leads (the payment or invoice page) as the whole window. Browsers let a frame do that after
 * the buyer's own click; should one refuse, the form's button becomes a link that does it with the next click.
 */
function openAsWholePage(form: HTMLFormElement, next: string) {
  try {
    self.top!.location.href = next;
  } catch {
    // Refused: the link below.
  }
  const button = form.querySelector<HTMLButtonElement>("button[data-label]");
  const link = Object.assign(document.createElement("a"), { href: next, target: "_top", className: "button" });
  link.textContent = button?.dataset.label || "Continue";
  (button ?? form).replaceWith(link);
}

/**
 * The question with each `{field}` replaced by the field's value as the person sees it: a select's chosen label, a
 * date and time without the "T". Braces naming no field the person can see are left as they are: a question may
 * hold a shop's or buyer's text (a form's title), and `{_csrf}` there must not show the form's hidden token.
 */
function fillFields(question: string, form: HTMLFormElement): string {
  return question.replace(/\{(\w+)\}/g, (whole, name: string) => {
    const field = form.elements.namedItem(name);
    if (field instanceof HTMLSelectElement) return field.selectedOptions[0]?.text ?? "";
    if (field instanceof HTMLInputElement && field.type !== "hidden") {
      return field.type === "datetime-local" ? field.value.replace("T", " ") : field.value;
    }
    return whole;
  });
}

/**
 * A list that takes saved entries away asks first, naming them; one that only adds asks nothing (data-confirm-removal:
 * the question, `{removed}` where they go; data-saved: the list as saved; data-list: the list's field). What it named
 * goes along as `removing`: the server saves only when that is what the list takes away, and asks on a page of its own
 * otherwise (the list changed meanwhile, an entry this reading takes for another).
 */
function removalQuestion(form: HTMLFormElement): string | undefined {
  const { confirmRemoval = "", saved = "", list = "" } = form.dataset;
  const field = form.elements.namedItem(list);
  const typed = field instanceof HTMLTextAreaElement || field instanceof HTMLInputElement ? field.value : "";
  const kept = new Set(entries(typed).map(asStored));
  const removed = entries(saved).filter((entry) => !kept.has(entry));
  if (!removed.length) return undefined;
  hiddenField(form, "removing").value = removed.join(" ");
  return confirmRemoval.replace("{removed}", removed.join(", "));
}

/** A list field's entries, as the server reads them (lib/shops.ts listFromField): spaces, commas and lines part them. */
function entries(text: string): string[] {
  return text.split(/[\s,]+/).filter(Boolean);
}

/** An entry as the server stores an origin (the URL's own serialisation: lower-case, no default port), else as typed. */
function asStored(entry: string): string {
  try {
    return new URL(entry).origin;
  } catch {
    return entry;
  }
}

/** The form's hidden field `name`, added when the page has none. */
function hiddenField(form: HTMLFormElement, name: string): HTMLInputElement {
  return form.querySelector<HTMLInputElement>(`input[name=${name}]`) ?? form.appendChild(
    Object.assign(document.createElement("input"), { type: "hidden", name }),
  );
}

// Back to a page whose form was sent (the browser's page cache) shows its buttons ready again.
addEventListener("pageshow", (e) => {
  if (e.persisted) location.reload();
});
