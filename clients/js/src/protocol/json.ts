/**
 * A strict JSON reader for payloads (§3.1): RFC 8259 grammar, a duplicate key anywhere is an error
 * (JSON.parse keeps the last one silently), and a number is a JS number only when written as an
 * integer; any other number is kept as a `JsonNumber` so that `1.0` is never mistaken for `1`.
 */

/** A number written with a fraction or exponent. */
export class JsonNumber {
  constructor(readonly text: string) {}
}

const STRING = /"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/y;
const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
const INTEGER = /^-?(?:0|[1-9][0-9]*)$/;

/** Parses `text`, throwing a SyntaxError on anything JSON.parse would refuse and on duplicate keys. */
export function parseStrictJson(text: string): unknown {
  let at = 0;
  const fail = (what: string): never => {
    throw new SyntaxError(`${what} at offset ${at}`);
  };
  const skip = () => {
    while (at < text.length && " \t\n\r".includes(text[at]!)) at++;
  };
  const match = (re: RegExp): string | null => {
    re.lastIndex = at;
    const m = re.exec(text);
    if (m === null) return null;
    at += m[0].length;
    return m[0];
  };
  const string = (): string => JSON.parse(match(STRING) ?? fail("a string expected")) as string;
  const value = (depth: number): unknown => {
    if (depth > 64) fail("nested too deeply");
    skip();
    const c = text[at];
    if (c === "{") {
      at++;
      const out: Record<string, unknown> = Object.create(null);
      const seen = new Set<string>();
      skip();
      if (text[at] === "}") {
        at++;
        return out;
      }
      for (;;) {
        skip();
        const key = string();
        if (seen.has(key)) fail("a duplicate key");
        seen.add(key);
        skip();
        if (text[at++] !== ":") fail("':' expected");
        out[key] = value(depth + 1);
        skip();
        const d = text[at++];
        if (d === "}") return out;
        if (d !== ",") fail("',' or '}' expected");
      }
    }
    if (c === "[") {
      at++;
      const out: unknown[] = [];
      skip();
      if (text[at] === "]") {
        at++;
        return out;
      }
      for (;;) {
        out.push(value(depth + 1));
        skip();
        const d = text[at++];
        if (d === "]") return out;
        if (d !== ",") fail("',' or ']' expected");
      }
    }
    if (c === '"') return string();
    for (const [word, v] of [
      ["true", true],
      ["false", false],
      ["null", null],
    ] as const) {
      if (text.startsWith(word, at)) {
        at += word.length;
        return v;
      }
    }
    const n = match(NUMBER) ?? fail("a value expected");
    return INTEGER.test(n) ? Number(n) : new JsonNumber(n);
  };
  const v = value(0);
  skip();
  if (at !== text.length) fail("text after the value");
  return v;
}
