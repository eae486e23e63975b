import { useEffect, useState } from "preact/hooks";

/**
 * A moment in the reader's own time zone and way of writing dates ("Nov 30, 2026, 9:04 AM GMT+9"), where JavaScript
 * runs. The server knows neither, so it renders UTC, which is what a page without JavaScript keeps; the browser
 * switches once hydrated (after the first render, so hydration matches what the server sent).
 */
export default function LocalTime(props: { at: number }) {
  const [local, setLocal] = useState(false);
  useEffect(() => setLocal(true), []);
  const text = local ? new Intl.DateTimeFormat(undefined, LOCAL).format(props.at) : utc(props.at);
  return <time dateTime={new Date(props.at).toISOString()}>{text}</time>;
}

/** Field by field: Intl refuses a time zone's name together with dateStyle and timeStyle (a TypeError). */
export const LOCAL: Intl.DateTimeFormatOptions = {
  year: "numeric",
  month: "short",
  day: "numeric",
  hour: "numeric",
  minute: "2-digit",
  timeZoneName: "short",
};

/** "2026-11-30 00:04 UTC": the same for every reader. */
function utc(ms: number): string {
  return new Date(ms).toISOString().slice(0, 16).replace("T", " ") + " UTC";
}
