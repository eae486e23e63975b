import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";

export interface TimeChartProps {
  title: string;
  /** UTC days, YYYY-MM-DD, oldest first. */
  days: string[];
  series: { label: string; values: (number | null)[] }[];
  unit?: string;
  /** A fixed top of the value axis (100 for a rate in %), so the scale reads the same on every page. */
  max?: number;
}

// Okabe–Ito: told apart by people with the common colour-vision deficiencies, and on light and dark pages.
const COLORS = ["#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442", "#999999"];

// Axis labels stay short enough for the axis's width: 1.2K, 35M.
const compact = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 1 });

/**
 * A line chart of daily values drawn with uPlot in the browser. The server
 * renders the same numbers as a table, so the page reads fine without
 * JavaScript and for screen readers.
 */
export default function TimeChart(props: TimeChartProps) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const xs = props.days.map((d) => Date.parse(d + "T00:00:00Z") / 1000);
    const chart = new uPlot(
      {
        width: el.clientWidth || 600,
        height: 220,
        series: [
          {},
          ...props.series.map((s, i) => ({
            label: s.label,
            stroke: COLORS[i % COLORS.length],
            width: 2,
            value: (_u: uPlot, v: number | null) => (v === null ? "—" : `${v}${props.unit ?? ""}`),
          })),
        ],
        axes: [
          { stroke: "currentColor", space: 70 },
          {
            stroke: "currentColor",
            size: 56,
            values: (_u: uPlot, splits: number[]) => splits.map((v) => `${compact.format(v)}${props.unit ?? ""}`),
          },
        ],
        scales: {
          x: { time: true },
          ...(props.max !== undefined ? { y: { range: [0, props.max] as uPlot.Range.MinMax } } : {}),
        },
      },
      [xs, ...props.series.map((s) => s.values)] as uPlot.AlignedData,
      el,
    );
    const resize = () => chart.setSize({ width: el.clientWidth || 600, height: 220 });
    addEventListener("resize", resize);
    return () => {
      removeEventListener("resize", resize);
      chart.destroy();
    };
  }, []);
  return (
    <figure class="chart">
      <figcaption>{props.title}</figcaption>
      <div ref={box} class="uplot-box" />
      <details>
        <summary>Data</summary>
        <div class="table-wrap">
          <table>
            <thead>
              <tr>
                <th>Day</th>
                {props.series.map((s) => <th key={s.label}>{s.label}</th>)}
              </tr>
            </thead>
            <tbody>
              {props.days.map((d, i) => (
                <tr key={d}>
                  <td>{d}</td>
                  {props.series.map((s) => <td key={s.label} class="num">{s.values[i] ?? "—"}</td>)}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </details>
    </figure>
  );
}
