/** Browser entry: hydrates every server-rendered island on the page with its serialized props. */
import { h, hydrate } from "preact";
import { islands } from "./mod.ts";

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
  form.dataset.sent = "1";
  form.setAttribute("aria-busy", "true");
  const button = (e as SubmitEvent).submitter ?? form.querySelector("button");
  if (button instanceof HTMLButtonElement) {
    button.disabled = true;
    button.textContent = busy;
  }
});

/**
 * The question with each `{field}` replaced by the field's value as the person sees it: a select's chosen label, a
 * date and time without the "T". Braces naming no field of the form are left as they are (a name in a question may
 * have some).
 */
function fillFields(question: string, form: HTMLFormElement): string {
  return question.replace(/\{(\w+)\}/g, (whole, name: string) => {
    const field = form.elements.namedItem(name);
    if (field instanceof HTMLSelectElement) return field.selectedOptions[0]?.text ?? "";
    if (field instanceof HTMLInputElement) {
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
