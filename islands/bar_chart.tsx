import { useState } from "preact/hooks";

export interface BarChartProps {
  title: string;
  bars: { label: string; value: number; display: string }[];
}

/** A small SVG bar chart; hovering or focusing a bar shows its value. Rendered on the server too. */
export default function BarChart({ title, bars }: BarChartProps) {
  const [active, setActive] = useState<number | null>(null);
  const max = Math.max(1, ...bars.map((b) => b.value));
  const width = 600;
  const height = 160;
  const step = width / Math.max(1, bars.length);
  const shown = active === null ? null : bars[active];
  return (
    <figure class="chart">
      <figcaption>
        {title}
        {shown ? `: ${shown.label}, ${shown.display}` : ""}
      </figcaption>
      <svg viewBox={`0 0 ${width} ${height + 20}`} role="img" aria-label={title}>
        {bars.map((b, i) => {
          const h = Math.round((b.value / max) * height);
          return (
            <rect
              key={b.label}
              x={i * step + 1}
              y={height - h}
              width={Math.max(1, step - 2)}
              height={Math.max(h, 1)}
              class={i === active ? "bar active" : "bar"}
              tabIndex={0}
              onMouseEnter={() => setActive(i)}
              onFocus={() => setActive(i)}
              onMouseLeave={() => setActive(null)}
            >
              <title>{`${b.label}: ${b.display}`}</title>
            </rect>
          );
        })}
        {bars.length > 0 && <text x="0" y={height + 16} class="axis">{bars[0].label}</text>}
        {bars.length > 1 && (
          <text x={width} y={height + 16} text-anchor="end" class="axis">{bars[bars.length - 1].label}</text>
        )}
      </svg>
    </figure>
  );
}
