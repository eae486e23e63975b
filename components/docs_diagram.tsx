import type { SequenceDiagram as Diagram } from "../lib/docs/sequence.ts";

const COL = 205;
const BOX_W = 150;
const BOX_H = 34;
const TOP = 10;
const FIRST_ROW = BOX_H + TOP + 34;
const ROW = 38;
const FONT = "system-ui, -apple-system, 'Segoe UI', sans-serif";

/**
 * A sequence diagram as inline SVG: no script, no style attributes (the
 * Content-Security-Policy forbids both), colours from `currentColor` so it
 * follows light and dark mode. The steps are repeated as a list for screen
 * readers and narrow screens.
 */
export function SequenceDiagram(props: { diagram: Diagram; id: string }) {
  const { participants, messages } = props.diagram;
  const id = props.id;
  const width = participants.length * COL;
  const height = FIRST_ROW + messages.length * ROW;
  const x = (i: number) => i * COL + COL / 2;
  const title = `Sequence: ${participants.join(", ")}`;
  return (
    <figure class="diagram">
      <div class="diagram-scroll">
        <svg
          xmlns="http://www.w3.org/2000/svg"
          viewBox={`0 0 ${width} ${height}`}
          width={width}
          height={height}
          role="img"
          aria-labelledby={`${id}-title`}
          font-family={FONT}
          font-size="13"
          fill="currentColor"
        >
          <title id={`${id}-title`}>{title}</title>
          <defs>
            <marker
              id={`${id}-arrow`}
              viewBox="0 0 10 10"
              refX="9"
              refY="5"
              markerWidth="8"
              markerHeight="8"
              orient="auto-start-reverse"
            >
              <path d="M0,0 L10,5 L0,10 z" fill="currentColor" />
            </marker>
          </defs>
          {participants.map((name, i) => (
            <g key={name}>
              <line
                x1={x(i)}
                y1={TOP + BOX_H}
                x2={x(i)}
                y2={height - 6}
                stroke="currentColor"
                stroke-opacity="0.45"
                stroke-dasharray="3 4"
              />
              <rect
                x={x(i) - BOX_W / 2}
                y={TOP}
                width={BOX_W}
                height={BOX_H}
                rx="6"
                fill="none"
                stroke="currentColor"
                stroke-width={name === "AimbrellaPay" ? 2.5 : 1.2}
              />
              <text x={x(i)} y={TOP + BOX_H / 2 + 5} text-anchor="middle" font-weight="600">{name}</text>
            </g>
          ))}
          {messages.map((m, n) => {
            const y = FIRST_ROW + n * ROW;
            const dir = m.to > m.from ? 1 : -1;
            return (
              <g key={n}>
                <line
                  x1={x(m.from)}
                  y1={y}
                  x2={x(m.to) - dir * 2}
                  y2={y}
                  stroke="currentColor"
                  stroke-width="1.4"
                  stroke-dasharray={m.answer ? "6 4" : undefined}
                  marker-end={`url(#${id}-arrow)`}
                />
                <text class="label" x={(x(m.from) + x(m.to)) / 2} y={y - 7} text-anchor="middle">
                  {`${n + 1}. ${m.label}`}
                </text>
              </g>
            );
          })}
        </svg>
      </div>
      <details class="diagram-text">
        <summary>The diagram as text</summary>
        <ol>
          {messages.map((m, n) => (
            <li key={n}>
              {participants[m.from]} → {participants[m.to]}: {m.label}
            </li>
          ))}
        </ol>
      </details>
    </figure>
  );
}
