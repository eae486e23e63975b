import { ValidationError } from "./errors.ts";
import { echoedName } from "./validation.ts";

const MAX_DEPTH = 8;

/**
 * Parses a request body as JSON more strictly than JSON.parse: it rejects
 * duplicated keys (JSON.parse silently keeps the last one, which lets two
 * parsers disagree about a payment) and nesting deeper than our schemas use.
 */
export function parseStrictJson(text: string): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ValidationError("The body is not valid JSON.");
  }
  checkKeysAndDepth(text);
  return value;
}

function checkKeysAndDepth(text: string) {
  const stack: (Set<string> | null)[] = [];
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '"') {
      let end = i + 1;
      while (text[end] !== '"') end += text[end] === "\\" ? 2 : 1;
      if (expectKey) {
        const key = JSON.parse(text.slice(i, end + 1)) as string;
        const keys = stack[stack.length - 1]!;
        if (keys.has(key)) {
          // The sender's own text, echoed only as far as any field name is (a 16 KiB key would come back twice).
          const name = echoedName(key);
          throw new ValidationError(`Duplicated field "${name}".`, { [name]: "duplicated" });
        }
        keys.add(key);
        expectKey = false;
      }
      i = end;
    } else if (ch === "{" || ch === "[") {
      stack.push(ch === "{" ? new Set() : null);
      expectKey = ch === "{";
      if (stack.length > MAX_DEPTH) throw new ValidationError("The body is nested too deeply.");
    } else if (ch === "}" || ch === "]") {
      stack.pop();
      expectKey = false;
    } else if (ch === ",") {
      expectKey = stack[stack.length - 1] instanceof Set;
    }
  }
}
