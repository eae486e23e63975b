import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";

export interface TimeChartProps {
  title: string;
  /** UTC days, YYYY-MM-DD, oldest first. */
  days: string[];
  series: { label: string; values: (number | null)[] }[];
  unit?: string;
}

const COLORS = ["#1f4fbf", "#17693a", "#b3261e", "#8a5a00", "#6b3fa0"];

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
        axes: [{}, { size: 60 }],
        scales: { x: { time: true } },
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
