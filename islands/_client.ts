/** Browser entry: hydrates every server-rendered island on the page with its serialized props. */
import { h, hydrate } from "preact";
import { islands } from "./mod.ts";

for (const el of document.querySelectorAll<HTMLElement>("[data-island]")) {
  const component = islands[el.dataset.island as keyof typeof islands];
  if (!component) continue;
  // deno-lint-ignore no-explicit-any
  hydrate(h(component as any, JSON.parse(el.dataset.props ?? "{}")), el);
}
