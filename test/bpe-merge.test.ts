/**
 * The O(n log n) BPE merge (src/model/bpe-merge.ts) against the quadratic run.c loop it replaced, kept
 * here as the reference: the same ids on random and real text, for the stories260K and reader
 * vocabularies; and a long prompt encodes in time that grows like n log n, yielding to the event loop.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { BpeTokenizer } from "../src/model/bpe.ts";
import { bpeMerge } from "../src/model/bpe-merge.ts";
import { Llama2cTokenizer } from "../src/model/llama2c-tokenizer.ts";
import { dataPath } from "../src/util/paths.ts";
import { Rng } from "../src/util/rng.ts";

/** The merge loop as it was (run.c's, pair lookups cached): the reference for the new one. */
function quadraticMerge(tokens: number[], pairOf: (a: number, b: number) => number, scores: Float32Array): number[] {
  tokens = [...tokens];
  const pairId: number[] = [];
  for (let i = 0; i + 1 < tokens.length; i++) pairId.push(pairOf(tokens[i]!, tokens[i + 1]!));
  const floor = Math.fround(-1e10);
  for (;;) {
    let bestScore = floor;
    let bestIdx = -1;
    for (let i = 0; i < pairId.length; i++) {
      const id = pairId[i]!;
      if (id !== -1 && scores[id]! > bestScore) {
        bestScore = scores[id]!;
        bestIdx = i;
      }
    }
    if (bestIdx === -1) return tokens;
    tokens[bestIdx] = pairId[bestIdx]!;
    tokens.splice(bestIdx + 1, 1);
    pairId.splice(bestIdx, 1);
    if (bestIdx > 0) pairId[bestIdx - 1] = pairOf(tokens[bestIdx - 1]!, tokens[bestIdx]!);
    if (bestIdx < pairId.length) pairId[bestIdx] = pairOf(tokens[bestIdx]!, tokens[bestIdx + 1]!);
  }
}

const stories = Llama2cTokenizer.load(dataPath("models", "stories260K", "tok512.bin"), 512);
const reader = BpeTokenizer.load(dataPath("models", "reader", "tokenizer.bin"), 4096);

/** run.c's encode with the old merge: the first pass is encode's with every merge score floored out. */
function referenceEncode(tok: Llama2cTokenizer, text: string): number[] {
  const none = new Float32Array(tok.vocabSize).fill(-Infinity);
  const first = new Llama2cTokenizer(Array.from({ length: tok.vocabSize }, (_, i) => tok.pieceBytes(i)), none, tok.maxTokenLength).encode(text);
  const keys = Array.from({ length: tok.vocabSize }, (_, i) => String.fromCharCode(...tok.pieceBytes(i)));
  return quadraticMerge(first, (a, b) => tok.lookup(keys[a]! + keys[b]!), tok.scores);
}

function randomText(rng: Rng, length: number): string {
  const alphabets = ["abcdefghijklmnopqrstuvwxyz", "AEIOU aeiou  ", " \n\t.,;!?", "0123456789", "éüß—«»Жж日本語🙂", "thethethe onceupon"];
  let s = "";
  while (s.length < length) {
    const a = alphabets[Math.floor(rng.next() * alphabets.length)]!;
    const chars = [...a];
    for (let i = 0, n = 1 + Math.floor(rng.next() * 12); i < n; i++) s += chars[Math.floor(rng.next() * chars.length)];
  }
  return s;
}

test("the heap merge gives the quadratic loop's ids on random text, for random vocabularies with tied scores", () => {
  const rng = new Rng(7);
  for (let trial = 0; trial < 300; trial++) {
    const vocab = 3 + Math.floor(rng.next() * 12);
    // Scores from a small set, so ties (leftmost wins) are common; some below run.c's floor.
    const scores = Float32Array.from({ length: vocab * 2 }, () => [0, -1, -2, -1e11][Math.floor(rng.next() * 4)]!);
    const table = new Map<number, number>();
    for (let i = 0; i < vocab * 3; i++) table.set(Math.floor(rng.next() * vocab) * 1000 + Math.floor(rng.next() * vocab), Math.floor(rng.next() * vocab * 2));
    const pairOf = (a: number, b: number): number => table.get(a * 1000 + b) ?? -1;
    const tokens = Array.from({ length: Math.floor(rng.next() * 60) }, () => Math.floor(rng.next() * vocab));
    assert.deepEqual(bpeMerge(tokens, pairOf, scores), quadraticMerge(tokens, pairOf, scores), `trial ${trial}`);
  }
});

test("Llama2cTokenizer.encode and encodeAsync equal the old run.c loop on random and real text", async () => {
  const rng = new Rng(11);
  const real = readFileSync(dataPath("models", "stories260K", "reference", "run_t0_empty_n200.txt"), "utf8");
  const texts = [real, real.slice(0, 300), "", " ", "a", "Once upon a time", "\u0000after nul", ...Array.from({ length: 40 }, (_, i) => randomText(rng, 1 + i * 25))];
  for (const t of texts) {
    const expected = referenceEncode(stories, t);
    assert.deepEqual(stories.encode(t), expected, JSON.stringify(t.slice(0, 40)));
    assert.deepEqual(await stories.encodeAsync(t), expected);
    assert.deepEqual(stories.encode(t, { bos: false, eos: true }), [...expected.slice(1), 2]);
  }
});

test("BpeTokenizer (chunked, cached) equals run.c's algorithm on random text, sync and async", async () => {
  const rng = new Rng(13);
  for (let i = 0; i < 30; i++) {
    const t = randomText(rng, 1 + i * 40);
    const ids = reader.encode(t, { bos: true, eos: true });
    assert.deepEqual(ids, reader.reference.encode(t, { bos: true, eos: true }));
    assert.deepEqual(await reader.encodeAsync(t, { bos: true, eos: true }), ids);
    assert.equal(reader.decode(ids), t.includes("\0") ? t.slice(0, t.indexOf("\0")) : t);
  }
});

test("a 512 KiB prompt encodes in seconds, not minutes, and encodeAsync never holds the event loop for long", async () => {
  const rng = new Rng(17);
  const big = randomText(rng, 512 * 1024);
  const letters = "a".repeat(512 * 1024);
  for (const text of [big, letters]) {
    const t0 = performance.now();
    const ids = stories.encode(text);
    const elapsed = performance.now() - t0;
    assert.ok(elapsed < 10_000, `512 KiB encoded in ${elapsed.toFixed(0)} ms`);
    // The event loop keeps turning: the longest gap between timer ticks while encodeAsync runs.
    let last = performance.now();
    let worst = 0;
    let ticks = 0;
    const timer = setInterval(() => {
      const now = performance.now();
      worst = Math.max(worst, now - last);
      last = now;
      ticks++;
    }, 1);
    const asyncIds = await stories.encodeAsync(text);
    clearInterval(timer);
    assert.deepEqual(asyncIds, ids);
    // On an idle machine the gaps stay near the 4 ms slices; the bound leaves room for a loaded one (GC
    // pauses, other processes): the count of ticks is what shows that the encoding yields.
    assert.ok(ticks >= 5 && worst < 2000, `the timer ran ${ticks} times, waiting ${worst.toFixed(1)} ms at most`);
  }
  // The reader tokenizer on one 512 KiB run of letters (one chunk): n log n, not n^2.
  const t0 = performance.now();
  reader.encode("ab".repeat(256 * 1024));
  assert.ok(performance.now() - t0 < 5000);
});
