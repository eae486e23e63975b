import type { ComponentChildren, VNode } from "preact";
import { renderToString } from "preact-render-to-string";

/** The shared page shell: server-rendered, no scripts, one small stylesheet. */
export function Page(props: { title: string; children: ComponentChildren }) {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{props.title}</title>
        <link rel="stylesheet" href="/static/style.css" />
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
