import { useState } from "preact/hooks";

/** Copies a value (a new API key, a secret) to the clipboard; without JavaScript the value is still shown to select. */
export default function CopyButton(props: { text: string; label?: string }) {
  const [copied, setCopied] = useState(false);
  return (
    <button
      type="button"
      class="secondary small"
      onClick={async () => {
        await navigator.clipboard.writeText(props.text);
        setCopied(true);
        setTimeout(() => setCopied(false), 1500);
      }}
    >
      {copied ? "Copied" : props.label ?? "Copy"}
    </button>
  );
}
