import { currencyExponent } from "../lib/money.ts";
import type { DailyPoint } from "../lib/stats.ts";
import { Island } from "./island.tsx";
import type { AttentionCounts } from "../lib/db/deliveries.ts";
import { attentionCount } from "./deliveries.tsx";

/** The built-in charts: payments, success rate, volume per currency, time to pay, postback health. */
export function BuiltInStats(props: { points: DailyPoint[]; postbacks: AttentionCounts }) {
  const days = props.points.map((p) => p.day);
  const currencies = [...new Set(props.points.flatMap((p) => Object.keys(p.volume)))].sort();
  return (
    <>
      <p class="muted">
        Built-in statistics from counters kept with every payment change (UTC days). Postbacks now:{" "}
        <strong>{attentionCount(props.postbacks.failing, props.postbacks.more)}</strong> retrying,{" "}
        <strong>{attentionCount(props.postbacks.failed, props.postbacks.more)}</strong> failed.
      </p>
      <Island
        name="TimeChart"
        props={{
          title: "Payments per day",
          days,
          series: [
            { label: "created", values: props.points.map((p) => p.created) },
            { label: "succeeded", values: props.points.map((p) => p.succeeded) },
          ],
        }}
      />
      <Island
        name="TimeChart"
        props={{
          title: "Success rate of settled payments (%)",
          days,
          unit: "%",
          max: 100,
          series: [{
            label: "success rate",
            values: props.points.map((p) => (p.successRate === null ? null : Math.round(p.successRate * 1000) / 10)),
          }],
        }}
      />
      {
        // One chart per currency: amounts in different currencies share no scale.
        currencies.map((c) => (
          <Island
            key={c}
            name="TimeChart"
            props={{
              title: `Succeeded volume per day, ${c}`,
              days,
              series: [{
                label: c,
                // Major units for reading; the counters themselves stay integer minor units.
                values: props.points.map((p) => (p.volume[c] ?? 0) / 10 ** currencyExponent(c)),
              }],
            }}
          />
        ))
      }
      {currencies.length === 0 && <p class="muted">No succeeded volume in these 30 days yet.</p>}
      <Island
        name="TimeChart"
        props={{
          title: "Mean time to pay",
          days,
          unit: " s",
          series: [{ label: "seconds", values: props.points.map((p) => p.meanSecondsToPay) }],
        }}
      />
    </>
  );
}

/** The stats page of either audience: the embedded dashboard when there is one, the built-in charts otherwise. */
export function StatsView(
  props: { stats: { embedUrl: string } | Parameters<typeof BuiltInStats>[0]; title: string },
) {
  return "embedUrl" in props.stats
    ? <EmbeddedDashboard url={props.stats.embedUrl} title={props.title} />
    : <BuiltInStats {...props.stats} />;
}

/** A Metabase dashboard embedded with a signed, short-lived URL. */
export function EmbeddedDashboard({ url, title }: { url: string; title: string }) {
  return <iframe class="dashboard" src={url} title={title} loading="lazy" />;
}
