/**
 * The kernel's input history, in memory for the life of the kernel process (one history session).
 * Answers history_request the way IPython does: [session, line, input] or [session, line, [input, output]].
 */
export type HistoryEntry = [number, number, string | [string, string | null]];

interface Line {
  line: number;
  input: string;
  output: string | null;
}

export interface HistoryQuery {
  output?: boolean;
  hist_access_type?: string;
  session?: number;
  start?: number;
  stop?: number | null;
  n?: number | null;
  pattern?: string;
  unique?: boolean;
}

/** IPython's search takes sqlite GLOB patterns: `*`, `?` and `[...]`. */
function globToRegExp(pattern: string): RegExp {
  let source = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === "*") source += "[\\s\\S]*";
    else if (c === "?") source += "[\\s\\S]";
    else if (c === "[") {
      const close = pattern.indexOf("]", i + 1);
      if (close < 0) source += "\\[";
      else {
        source += `[${pattern.slice(i + 1, close).replace(/^!/, "^").replace(/\\/g, "\\\\")}]`;
        i = close;
      }
    } else source += c.replace(/[.+^${}()|\\]/g, "\\$&");
  }
  return new RegExp(`^${source}$`);
}

export class History {
  private readonly lines: Line[] = [];
  constructor(readonly session = 1) {}

  add(line: number, input: string): void {
    this.lines.push({ line, input, output: null });
  }

  setOutput(line: number, output: string): void {
    const entry = this.lines.findLast((l) => l.line === line);
    if (entry) entry.output = output;
  }

  query(q: HistoryQuery): HistoryEntry[] {
    let selected: Line[];
    const type = q.hist_access_type ?? "tail";
    if (type === "range") {
      // Only this session exists; 0 or a negative number means "the current session", as in IPython.
      if (q.session !== undefined && q.session > 0 && q.session !== this.session) return [];
      const start = q.start ?? 0;
      const stop = q.stop ?? Infinity;
      selected = this.lines.filter((l) => l.line >= start && l.line < stop);
    } else if (type === "search") {
      const re = globToRegExp(q.pattern ?? "*");
      selected = this.lines.filter((l) => re.test(l.input));
    } else {
      selected = [...this.lines];
    }
    if (q.unique) {
      const seen = new Set<string>();
      selected = selected.reverse().filter((l) => !seen.has(l.input) && (seen.add(l.input), true)).reverse();
    }
    if (type !== "range") {
      const n = q.n ?? (type === "tail" ? 10 : null);
      if (n !== null && n !== undefined && n >= 0) selected = n === 0 ? [] : selected.slice(-n);
    }
    return selected.map((l) => [this.session, l.line, q.output ? [l.input, l.output] : l.input]);
  }
}
