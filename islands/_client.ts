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
  const { confirm: question, busy } = form.dataset;
  if (form.dataset.sent) return e.preventDefault();
  if (question) {
    if (!confirm(fillFields(question, form))) return e.preventDefault();
    const yes = form.querySelector<HTMLInputElement>("input[name=confirm]") ?? form.appendChild(
      Object.assign(document.createElement("input"), { type: "hidden", name: "confirm" }),
    );
    yes.value = "yes";
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

// Back to a page whose form was sent (the browser's page cache) shows its buttons ready again.
addEventListener("pageshow", (e) => {
  if (e.persisted) location.reload();
});
