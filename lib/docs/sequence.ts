/**
 * A tiny text format for sequence diagrams in the docs, so a diagram lives in
 * its Markdown file and reads as text on GitHub too:
 *
 *     participant Shop
 *     participant AimbrellaPay
 *     Shop -> AimbrellaPay: POST /api/v1/init-payment
 *     AimbrellaPay --> Shop: 201 {id, url}
 *
 * `->` is a call, `-->` an answer (drawn dashed). Lines starting with `#` are
 * comments. Anything else is an error, so a typo fails the docs tests.
 */
export interface SequenceMessage {
  from: number;
  to: number;
  label: string;
  answer: boolean;
}

export interface SequenceDiagram {
  participants: string[];
  messages: SequenceMessage[];
}

export function parseSequence(source: string): SequenceDiagram {
  const participants: string[] = [];
  const messages: SequenceMessage[] = [];
  const index = (name: string, line: number) => {
    const i = participants.indexOf(name);
    if (i < 0) throw new Error(`sequence diagram line ${line}: unknown participant "${name}"`);
    return i;
  };
  source.split("\n").forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const participant = line.match(/^participant\s+(\S.*)$/);
    if (participant) {
      participants.push(participant[1].trim());
      return;
    }
    const message = line.match(/^(.+?)\s*(-->|->)\s*(.+?)\s*:\s*(.+)$/);
    if (!message) throw new Error(`sequence diagram line ${i + 1}: cannot read "${line}"`);
    const [, from, arrow, to, label] = message;
    const f = index(from, i + 1);
    const t = index(to, i + 1);
    if (f === t) throw new Error(`sequence diagram line ${i + 1}: a message needs two participants`);
    messages.push({ from: f, to: t, label: label.trim(), answer: arrow === "-->" });
  });
  if (participants.length < 2) throw new Error("sequence diagram: at least two participants are needed");
  return { participants, messages };
}
