import { Page } from "./html.tsx";

/** A friendly page for buyers and operators when something is missing or wrong. */
export function MessagePage(props: { title: string; text: string; link?: { href: string; label: string } }) {
  return (
    <Page title={`${props.title} · AimbrellaPay`}>
      <h1>{props.title}</h1>
      <p>{props.text}</p>
      {props.link && (
        <p>
          <a class="button" href={props.link.href}>{props.link.label}</a>
        </p>
      )}
    </Page>
  );
}
