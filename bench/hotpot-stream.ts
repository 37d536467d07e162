/**
 * Streaming HotpotQA reader vs JSON.parse of the whole file, on a generated file of at least
 * 500 MiB in the original layout (one JSON array on one line, like hotpot_train_v1.1.json),
 * made by repeating the 100 shipped train records. Each method runs in its own child process,
 * so each peak RSS (process.resourceUsage().maxRSS) is its own. Goal: >= 100 MB/s and peak RSS
 * under 300 MB for the streaming reader.
 *
 *   node --import tsx bench/hotpot-stream.ts [--mib 505] [--keep FILE]
 */
import { spawnSync } from "node:child_process";
import { createWriteStream, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { readHotpot } from "../src/data/hotpot.ts";
import { writeJsonAtomic } from "../src/util/fs.ts";
import { dataPath, repoRoot } from "../src/util/paths.ts";

interface ChildResult {
  method: string;
  records: number;
  checksum: number;
  seconds: number;
  maxRssMB: number;
}

async function child(method: string, file: string): Promise<void> {
  const started = process.hrtime.bigint();
  let records = 0;
  let checksum = 0;
  if (method === "stream") {
    for await (const s of readHotpot(file)) {
      records++;
      checksum += s.context.length + s.answer.length;
    }
  } else {
    const all = JSON.parse(readFileSync(file, "utf8")) as { context: unknown[]; answer: string }[];
    for (const s of all) {
      records++;
      checksum += s.context.length + s.answer.length;
    }
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const result: ChildResult = { method, records, checksum, seconds, maxRssMB: process.resourceUsage().maxRSS / 1024 };
  process.stdout.write(JSON.stringify(result) + "\n");
}

/** Writes `[r1,r2,...]` by repeating the records' own JSON text until the file reaches `bytes`. */
async function generate(file: string, bytes: number): Promise<{ bytes: number; records: number }> {
  const records = (JSON.parse(readFileSync(dataPath("hotpotqa", "hipporag_hotpot_train_100.json"), "utf8")) as unknown[]).map((r) => JSON.stringify(r));
  const out = createWriteStream(file);
  const write = (text: string): Promise<void> => new Promise((resolve) => (out.write(text) ? resolve() : out.once("drain", resolve)));
  let written = 1;
  let count = 0;
  await write("[");
  while (written < bytes) {
    const text = (count === 0 ? "" : ", ") + records[count % records.length]!;
    await write(text);
    written += Buffer.byteLength(text);
    count++;
  }
  await write("]");
  await new Promise<void>((resolve, reject) => out.end((error?: Error | null) => (error ? reject(error) : resolve())));
  return { bytes: statSync(file).size, records: count };
}

function runChild(method: string, file: string): ChildResult | { method: string; error: string } {
  const r = spawnSync(process.execPath, ["--max-old-space-size=16384", "--import", "tsx", fileURLToPath(import.meta.url), "--child", method, file], {
    cwd: repoRoot,
    encoding: "utf8",
    maxBuffer: 1 << 20,
  });
  if (r.status !== 0) return { method, error: (r.stderr || `exit ${r.status}`).trim().split("\n").slice(-3).join(" | ") };
  return JSON.parse(r.stdout.trim().split("\n").at(-1)!) as ChildResult;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args[0] === "--child") return child(args[1]!, args[2]!);
  const mib = Number(args[args.indexOf("--mib") + 1] ?? 505) || 505;
  const file = join(tmpdir(), `ktu-hotpot-bench-${process.pid}.json`);
  try {
    const t0 = Date.now();
    const generated = await generate(file, mib * 1024 * 1024);
    const mb = generated.bytes / 1e6;
    process.stdout.write(`generated ${mb.toFixed(0)} MB (${generated.records} records) in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${file}\n`);
    const stream = runChild("stream", file);
    const whole = runChild("json-parse", file);
    const rate = (r: ChildResult | { error: string }): number | null => ("seconds" in r ? mb / r.seconds : null);
    const line = (r: ChildResult | { method: string; error: string }): string =>
      "error" in r ? `${r.method.padEnd(10)} failed: ${r.error}` : `${r.method.padEnd(10)} ${rate(r)!.toFixed(0).padStart(5)} MB/s  peak RSS ${r.maxRssMB.toFixed(0).padStart(5)} MB  ${r.records} records  ${r.seconds.toFixed(2)} s`;
    process.stdout.write(`${line(stream)}\n${line(whole)}\n`);
    const ok = "records" in stream && stream.records === generated.records && (!("records" in whole) || whole.checksum === stream.checksum);
    if (!ok) throw new Error("the two methods disagree on the records read");
    const result = {
      bench: "hotpot-stream",
      date: new Date().toISOString(),
      node: process.version,
      file_mb: Number(mb.toFixed(1)),
      records: generated.records,
      stream: { ...stream, mb_per_s: rate(stream) },
      json_parse: "error" in whole ? whole : { ...whole, mb_per_s: rate(whole) },
      ratio_speed_stream_over_json_parse: "seconds" in whole && "seconds" in stream ? Number((whole.seconds / stream.seconds).toFixed(3)) : null,
      ratio_rss_json_parse_over_stream: "maxRssMB" in whole && "maxRssMB" in stream ? Number((whole.maxRssMB / stream.maxRssMB).toFixed(2)) : null,
      goal: { min_mb_per_s: 100, max_rss_mb: 300, met: "seconds" in stream && rate(stream)! >= 100 && stream.maxRssMB < 300 },
    };
    if (result.ratio_speed_stream_over_json_parse !== null) {
      process.stdout.write(`streaming speed vs JSON.parse: ${result.ratio_speed_stream_over_json_parse}x; JSON.parse peak RSS / streaming: ${result.ratio_rss_json_parse_over_stream}x\n`);
    }
    await writeJsonAtomic(join(repoRoot, "bench", "results", "hotpot-stream.json"), result);
    process.stdout.write(`goal (>= 100 MB/s, < 300 MB RSS) ${result.goal.met ? "met" : "NOT met"}\n`);
  } finally {
    rmSync(file, { force: true });
  }
}

await main();
