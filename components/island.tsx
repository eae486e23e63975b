import { h } from "preact";
import { type IslandName, islands } from "../islands/mod.ts";

/**
 * Renders an island on the server and marks it for hydration. Props travel in
 * a data attribute (escaped by Preact), so no inline script is needed under
 * our Content-Security-Policy. An `inline` island (a time within a sentence)
 * is wrapped in a span: a div would end the paragraph around it.
 */
export function Island<N extends IslandName>(
  props: { name: N; props: Parameters<typeof islands[N]>[0]; inline?: boolean },
) {
  // deno-lint-ignore no-explicit-any
  const inner = h(islands[props.name] as any, props.props);
  const Wrapper = props.inline ? "span" : "div";
  return (
    <Wrapper class="island" data-island={props.name} data-props={JSON.stringify(props.props)}>
      {inner}
    </Wrapper>
  );
}
