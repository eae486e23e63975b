import type { Shop } from "../lib/db/shops.ts";
import { overlapEndsAt, shopSigning, type SigningScheme } from "../lib/shops.ts";
import { CsrfField, formatTime } from "./admin_layout.tsx";
import { Island } from "./island.tsx";

/**
 * How a shop's postbacks and redirects are signed, for the operator console (with the forms to
 * rotate, switch scheme and turn signed redirects off: `manage`) and the shop's portal (read only).
 * Shows the public key of a shop on key pairs; never a secret or a private key.
 */
export function SigningCard(props: { shop: Shop; now: number; manage?: { csrf: string; action: string } }) {
  const { shop, manage } = props;
  const { scheme, publicKey, signRedirects } = shopSigning(shop);
  const overlapUntil = overlapEndsAt(shop, props.now);
  const keyPair = scheme === "ed25519";
  return (
    <section class="card" id="signing">
      <h2>Postback and redirect signatures</h2>
      <p>
        {keyPair
          ? "Ed25519 key pair (Standard Webhooks v1a): verify with the public key below; a leaked public key lets no one forge a postback."
          : "Shared secret (Standard Webhooks v1, HMAC-SHA256): the whsec_ secret given to the shop when it was created or last rotated."}
      </p>
      {publicKey && (
        <div class="secret-row">
          <span>Public key</span>
          <code class="select-all" data-public-key="">{publicKey}</code>
          <Island name="CopyButton" props={{ text: publicKey, label: "Copy" }} />
        </div>
      )}
      {overlapUntil && (
        <p class="muted">
          Rotation in progress: the previous secret or key also signs until{" "}
          {formatTime(overlapUntil)}, so postbacks and redirects carry both signatures.
        </p>
      )}
      <p class="muted">
        Signed redirects (apay_ parameters on the way back to the shop's pages):{" "}
        <strong class={signRedirects ? "ok" : "bad"}>{signRedirects ? "on" : "off"}</strong>
      </p>
      {manage && (
        <div class="actions">
          <SchemeForm
            manage={manage}
            scheme="ed25519"
            label={keyPair ? "Rotate key pair" : "Switch to a key pair"}
            confirm={signingQuestion(scheme, "ed25519", overlapUntil !== null)}
          />
          <SchemeForm
            manage={manage}
            scheme="hmac"
            label={keyPair ? "Switch to a shared secret" : "Rotate secret"}
            confirm={signingQuestion(scheme, "hmac", overlapUntil !== null)}
          />
          <form
            method="post"
            action={`${manage.action}/redirect-signing`}
            class="inline"
            data-confirm={signRedirects ? REDIRECT_SIGNING_OFF_QUESTION : undefined}
          >
            <CsrfField token={manage.csrf} />
            <input type="hidden" name="on" value={signRedirects ? "0" : "1"} />
            <button type="submit" class="secondary">
              {signRedirects ? "Turn signed redirects off" : "Turn signed redirects on"}
            </button>
          </form>
        </div>
      )}
    </section>
  );
}

/**
 * What an operator is asked before a rotation or a switch of scheme, by the page's script and by the page without
 * it. During a rotation's overlap a new one replaces the secret or key from before it at once (two sign at most).
 */
export function signingQuestion(current: SigningScheme, next: SigningScheme, rotating: boolean): string {
  const question = next === "ed25519"
    ? current === next
      ? "Make a new key pair? The old key keeps signing for 24 hours; the shop must verify with the new public key by then."
      : "Switch this shop to an Ed25519 key pair? Its secret keeps signing for 24 hours; the shop must verify with the public key by then."
    : current === next
    ? "Rotate the postback signing secret? The old one stops signing after 24 hours."
    : "Switch this shop back to a shared secret? The key pair keeps signing for 24 hours.";
  return rotating
    ? `${question} A rotation is already in progress: the secret or key from before it stops signing now, so a shop ` +
      "still verifying with that one fails from the next postback on."
    : question;
}

/** Asked before signed redirects go off: a shop that checks them would refuse its buyers' returns. */
export const REDIRECT_SIGNING_OFF_QUESTION =
  "Turn signed redirects off? Redirects back to the shop lose their apay_ parameters at once, and a shop that checks them refuses its buyers' returns.";

/** One button that rotates the shop's signing to `scheme` (a new key of the same kind, or a switch), asking first. */
function SchemeForm(
  props: { manage: { csrf: string; action: string }; scheme: "ed25519" | "hmac"; label: string; confirm: string },
) {
  return (
    <form method="post" action={`${props.manage.action}/signing`} class="inline" data-confirm={props.confirm}>
      <CsrfField token={props.manage.csrf} />
      <input type="hidden" name="scheme" value={props.scheme} />
      <button type="submit" class="secondary">{props.label}</button>
    </form>
  );
}
