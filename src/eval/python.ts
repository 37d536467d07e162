/**
 * The bits of Python that the authors' files and printouts depend on: `str(list)` as their xlsx
 * stored it, a real parser for such list literals, and `f"{x:.2f}"` rounding.
 */

/** Python 3's white space (str.isspace): JavaScript's \s lacks \x1c-\x1f and \x85 and adds \ufeff. */
const PY_SPACE = "\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const PY_STRIP = new RegExp(`^[${PY_SPACE}]+|[${PY_SPACE}]+$`, "g");
const PY_SPLIT = new RegExp(`[${PY_SPACE}]+`);

/** Python's `s.strip()`. */
export const pyStrip = (s: string): string => s.replace(PY_STRIP, "");

/** Python's `s.split()` with no argument: runs of white space, no empty pieces. */
export const pySplit = (s: string): string[] => s.split(PY_SPLIT).filter((w) => w.length > 0);

/** Python 3 `str.isprintable()` is false for these categories (Cc, Cf, Cs, Co, Cn, Zl, Zp, Zs but space). */
const NON_PRINTABLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Zs}]/u;

const hex = (code: number, width: number): string => code.toString(16).padStart(width, "0");

/** `repr(s)` for a Python 3 str: single quotes unless the text holds ' and no ". */
export function pythonStrRepr(s: string): string {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of s) {
    const code = ch.codePointAt(0)!;
    if (ch === quote || ch === "\\") out += "\\" + ch;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (ch !== " " && NON_PRINTABLE.test(ch)) {
      out += code < 0x100 ? `\\x${hex(code, 2)}` : code < 0x10000 ? `\\u${hex(code, 4)}` : `\\U${hex(code, 8)}`;
    } else out += ch;
  }
  return out + quote;
}

/** `str(list_of_str)`: what the authors' `save_xls_dataset` wrote into the pos_answer cell. */
export const pythonListRepr = (items: readonly string[]): string => `[${items.map(pythonStrRepr).join(", ")}]`;

/**
 * Parses a Python list literal of strings (and numbers, kept as their text), e.g.
 * `['a, b', "O'Neil", 'caf\xe9']`. Throws with the offset of the first bad character.
 */
export function parsePythonList(text: string): string[] {
  let i = 0;
  const fail = (what: string): never => {
    throw new Error(`not a Python list literal: ${what} at offset ${i} of ${JSON.stringify(text.length > 80 ? text.slice(0, 77) + "..." : text)}`);
  };
  const skipSpace = () => {
    while (i < text.length && /\s/.test(text[i]!)) i++;
  };
  const readString = (): string => {
    let prefix = "";
    while (/[rRuUbB]/.test(text[i] ?? "")) prefix += text[i++];
    const raw = /r/i.test(prefix);
    const q = text[i];
    if (q !== "'" && q !== '"') fail("expected a quote");
    const triple = text.startsWith(q!.repeat(3), i);
    const close = triple ? q!.repeat(3) : q!;
    i += close.length;
    let out = "";
    while (true) {
      if (i >= text.length) fail("unterminated string");
      if (text.startsWith(close, i)) {
        i += close.length;
        return out;
      }
      const ch = text[i]!;
      if (ch === "\n" && !triple) fail("newline inside a string");
      if (ch !== "\\") {
        out += ch;
        i++;
        continue;
      }
      const next = text[i + 1];
      if (next === undefined) fail("dangling backslash");
      if (raw) {
        out += ch + next;
        i += 2;
        continue;
      }
      i += 2;
      const simple: Record<string, string> = { n: "\n", r: "\r", t: "\t", "\\": "\\", "'": "'", '"': '"', a: "\x07", b: "\b", f: "\f", v: "\v", "0": "\0", "\n": "" };
      const width = next === "x" ? 2 : next === "u" ? 4 : next === "U" ? 8 : 0;
      if (width > 0) {
        const digits = text.slice(i, i + width);
        if (!/^[0-9a-fA-F]+$/.test(digits) || digits.length !== width) fail(`bad \\${next} escape`);
        out += String.fromCodePoint(parseInt(digits, 16));
        i += width;
      } else if (/[0-7]/.test(next!)) {
        let digits = next!;
        while (digits.length < 3 && /[0-7]/.test(text[i] ?? "")) digits += text[i++];
        out += String.fromCodePoint(parseInt(digits, 8));
      } else if (next! in simple) out += simple[next!];
      else out += "\\" + next; // Python keeps unknown escapes verbatim
    }
  };
  skipSpace();
  if (text[i] !== "[") fail("expected [");
  i++;
  const items: string[] = [];
  skipSpace();
  if (text[i] === "]") {
    i++;
  } else {
    while (true) {
      skipSpace();
      let item = "";
      if (/[-+0-9.]/.test(text[i] ?? "")) {
        const m = /^[-+]?[0-9][0-9_]*(\.[0-9_]*)?([eE][-+]?[0-9]+)?/.exec(text.slice(i));
        if (!m) fail("bad number");
        item = m![0];
        i += item.length;
      } else {
        item = readString();
        // Adjacent literals concatenate, as in Python.
        for (skipSpace(); /['"rRuUbB]/.test(text[i] ?? "") && text[i] !== undefined; skipSpace()) item += readString();
      }
      items.push(item);
      skipSpace();
      if (text[i] === ",") {
        i++;
        skipSpace();
        if (text[i] === "]") {
          i++;
          break;
        }
        continue;
      }
      if (text[i] === "]") {
        i++;
        break;
      }
      fail("expected , or ]");
    }
  }
  skipSpace();
  if (i !== text.length) fail("trailing text");
  return items;
}

/**
 * Python's `f"{x:.{digits}f}"`: rounds the exact binary value, ties to even (JavaScript's
 * toFixed breaks exact ties upwards, which differs on values like 12.125).
 */
export function pyFixed(x: number, digits: number): string {
  if (!Number.isFinite(x)) return x > 0 ? "inf" : x < 0 ? "-inf" : "nan";
  const negative = x < 0 || Object.is(x, -0);
  const [mantissa, exponent] = decompose(Math.abs(x));
  const scale = 10n ** BigInt(digits);
  let q: bigint;
  if (exponent >= 0) q = (mantissa << BigInt(exponent)) * scale;
  else {
    const den = 1n << BigInt(-exponent);
    const num = mantissa * scale;
    q = num / den;
    const twice = 2n * (num % den);
    if (twice > den || (twice === den && q % 2n === 1n)) q += 1n;
  }
  const s = q.toString().padStart(digits + 1, "0");
  const body = digits === 0 ? s : `${s.slice(0, -digits)}.${s.slice(-digits)}`;
  return negative ? `-${body}` : body;
}

/** x = mantissa * 2^exponent exactly, for finite x >= 0. */
function decompose(x: number): [bigint, number] {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  const bits = view.getBigUint64(0);
  const exp = Number((bits >> 52n) & 0x7ffn);
  const frac = bits & ((1n << 52n) - 1n);
  return exp === 0 ? [frac, -1074] : [frac | (1n << 52n), exp - 1075];
}

/** Rounds a number the way the seed prints it, and gives it back as a number for JSON. */
export const roundPy = (x: number, digits = 2): number => Number(pyFixed(x, digits));
