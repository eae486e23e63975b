import type { Shop } from "../lib/db/shops.ts";
import { MAX_SIGNING_SECRETS, shopSigners, shopSigning, type SignerView, type SigningScheme } from "../lib/shops.ts";
import { CsrfField, DestructiveButton, formatTime } from "./admin_layout.tsx";
import { Island } from "./island.tsx";

/**
 * How a shop's postbacks and redirects are signed, for the operator console (with the forms to rotate, switch
 * scheme, end a rotation's overlap and turn signed redirects off: `manage`) and the shop's portal (read only): which
 * secrets or keys sign now and until when. Shows the public keys of key pairs; never a secret or a private key.
 */
export function SigningCard(props: { shop: Shop; now: number; manage?: { csrf: string; action: string } }) {
  const { shop, manage } = props;
  const { scheme, publicKey, signRedirects } = shopSigning(shop);
  const signers = shopSigners(shop, props.now);
  const previous = signers.slice(1);
  const full = signers.length >= MAX_SIGNING_SECRETS;
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
      <p id="signers-now">
        {previous.length
          ? "Rotation in progress: every postback and redirect carries one signature from each of these, so a shop " +
            "verifying with any of them keeps working until that one stops."
          : "Signing now:"}
      </p>
      <ul class="signers" aria-labelledby="signers-now">
        {signers.map((s, i) => <SignerItem key={i} signer={s} current={i === 0} />)}
      </ul>
      <p class="muted">
        Signed redirects (apay_ parameters on the way back to the shop's pages):{" "}
        <strong class={signRedirects ? "ok" : "bad"}>{signRedirects ? "on" : "off"}</strong>
      </p>
      {manage && (
        <div class="actions">
          {full
            ? (
              <p class="muted">
                {MAX_SIGNING_SECRETS}{" "}
                secrets or keys sign at once, the most there can be: rotating or switching again is possible from{" "}
                {formatTime(Math.min(...previous.map((p) => p.until!)))}, when the first previous one stops, or after
                ending the overlap.
              </p>
            )
            : (
              <>
                <SchemeForm
                  manage={manage}
                  scheme="ed25519"
                  label={keyPair ? "Rotate key pair" : "Switch to a key pair"}
                  confirm={signingQuestion(scheme, "ed25519", previous.length > 0)}
                />
                <SchemeForm
                  manage={manage}
                  scheme="hmac"
                  label={keyPair ? "Switch to a shared secret" : "Rotate secret"}
                  confirm={signingQuestion(scheme, "hmac", previous.length > 0)}
                />
              </>
            )}
          {previous.length > 0 && (
            <form
              method="post"
              action={`${manage.action}/signing/end-overlap`}
              class="inline"
              data-confirm={endOverlapQuestion(signers)}
            >
              <CsrfField token={manage.csrf} />
              <DestructiveButton>End the overlap now</DestructiveButton>
            </form>
          )}
          <form
            method="post"
            action={`${manage.action}/redirect-signing`}
            class="inline"
            data-confirm={signRedirects ? REDIRECT_SIGNING_OFF_QUESTION : undefined}
          >
            <CsrfField token={manage.csrf} />
            <input type="hidden" name="on" value={signRedirects ? "0" : "1"} />
            {signRedirects
              ? <DestructiveButton>Turn signed redirects off</DestructiveButton>
              : <button type="submit" class="secondary">Turn signed redirects on</button>}
          </form>
        </div>
      )}
    </section>
  );
}

/** What a signer is, in words: "shared secret (v1) ending in …abcd" or "key pair (v1a)". */
function signerKind(signer: SignerView): string {
  return signer.scheme === "ed25519" ? "key pair (v1a)" : `shared secret (v1) ending in …${signer.endsWith}`;
}

/** One line of the list: current or previous, its kind, a previous key pair's public key, and until when it signs. */
function SignerItem({ signer, current }: { signer: SignerView; current: boolean }) {
  return (
    <li>
      <strong>{current ? "Current" : "Previous"}</strong> {signerKind(signer)}
      {!current && signer.publicKey && (
        <>
          {" "}
          <code>{signer.publicKey}</code>
        </>
      )}
      {current ? ": signs until it is replaced" : `: signs until ${formatTime(signer.until)}, then stops`}
    </li>
  );
}

/**
 * What an operator is asked before a rotation or a switch of scheme, by the page's script and by the page without
 * it. During a rotation's overlap the secret or key replaced before keeps its own end, so three sign for a while.
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
    ? `${question} A rotation is already in progress: the secret or key replaced before keeps signing until its own ` +
      "end, so postbacks carry three signatures until then."
    : question;
}

/**
 * What an operator is asked before ending an overlap: which previous secrets or keys stop signing, and what that
 * does to a shop still verifying with one.
 */
export function endOverlapQuestion(signers: SignerView[]): string {
  const [current, ...previous] = signers;
  const stopping = previous.map((p) => `the ${signerKind(p)} that signs until ${formatTime(p.until)}`).join(" and ");
  return `End the overlap now? ${capitalize(stopping)} ${previous.length > 1 ? "stop" : "stops"} signing at once, ` +
    "before the end the shop was promised: a shop still verifying with " + (previous.length > 1 ? "one" : "it") +
    ` fails from the next postback and redirect on. Only the current ${signerKind(current)} keeps signing.`;
}

const capitalize = (text: string) => text.charAt(0).toUpperCase() + text.slice(1);

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
