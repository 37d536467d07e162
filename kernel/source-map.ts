/**
 * The little of source maps that the kernel needs: decode the `mappings` of a v3 map (base64 VLQ) and
 * map a generated line/column back to the cell. One source file per map, as transpileModule emits.
 */
const BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const DIGIT = new Map([...BASE64].map((c, i) => [c, i]));

/** For each generated line (0-based): [generatedColumn, sourceLine, sourceColumn] sorted by column. */
export type LineMappings = [number, number, number][][];

export function decodeMappings(mappings: string): LineMappings {
  const lines: LineMappings = [];
  let sourceLine = 0;
  let sourceColumn = 0;
  let sourceIndex = 0;
  for (const lineText of mappings.split(";")) {
    const segments: [number, number, number][] = [];
    let column = 0;
    for (const segment of lineText.split(",")) {
      if (segment === "") continue;
      const values: number[] = [];
      let value = 0;
      let shift = 0;
      for (const char of segment) {
        const digit = DIGIT.get(char);
        if (digit === undefined) throw new Error(`bad source map character ${JSON.stringify(char)}`);
        value += (digit & 31) << shift;
        if (digit & 32) {
          shift += 5;
        } else {
          values.push(value & 1 ? -(value >>> 1) : value >>> 1);
          value = 0;
          shift = 0;
        }
      }
      column += values[0] ?? 0;
      if (values.length >= 4) {
        sourceIndex += values[1]!;
        sourceLine += values[2]!;
        sourceColumn += values[3]!;
        if (sourceIndex === 0) segments.push([column, sourceLine, sourceColumn]);
      }
    }
    lines.push(segments);
  }
  return lines;
}

/** The source position (0-based line and column) for a generated one, or undefined when unmapped. */
export function originalPosition(mappings: LineMappings, line: number, column: number): { line: number; column: number } | undefined {
  const segments = mappings[line];
  if (!segments || segments.length === 0) return undefined;
  let best = segments[0]!;
  for (const segment of segments) {
    if (segment[0] > column) break;
    best = segment;
  }
  return { line: best[1], column: best[2] + Math.max(0, column - best[0]) };
}
