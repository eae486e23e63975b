import { useState } from "preact/hooks";

const FAILED = "Not copied: select the text and copy it yourself";

/**
 * Copies a value (a new API key, a secret, a deposit address) to the clipboard; without JavaScript the value is still
 * shown to select. The outcome is said in a status region as well as on the button, since a screen reader does not
 * announce a focused button's new text; a browser that refuses the clipboard is said to have refused.
 */
export default function CopyButton(props: { text: string; label?: string }) {
  const [said, setSaid] = useState("");
  return (
    <>
      <button
        type="button"
        class="secondary small"
        onClick={async () => {
          let outcome = "Copied";
          try {
            await navigator.clipboard.writeText(props.text);
          } catch {
            outcome = FAILED;
          }
          setSaid(outcome);
          setTimeout(() => setSaid(""), outcome === FAILED ? 4000 : 1500);
        }}
      >
        {said === "Copied" ? "Copied" : said === FAILED ? "Not copied" : props.label ?? "Copy"}
      </button>
      <span role="status" class="sr-only">{said}</span>
    </>
  );
}
