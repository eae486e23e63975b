import type { ComponentChildren, VNode } from "preact";
import { renderToString } from "preact-render-to-string";

/**
 * The shared page shell: server-rendered, one small stylesheet, and no scripts unless a page asks for the island
 * bundle (`script`), as the demo shop does for its busy Buy button.
 */
export function Page(props: { title: string; children: ComponentChildren; script?: boolean }) {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{props.title}</title>
        <link rel="stylesheet" href="/static/style.css" />
        {props.script && <script type="module" src="/static/islands.js" defer />}
      </head>
      <body>
        <main>{props.children}</main>
      </body>
    </html>
  );
}

/** Renders a page to a full HTML response body. Preact escapes every text value. */
export function renderPage(vnode: VNode): string {
  return "<!doctype html>" + renderToString(vnode);
}
