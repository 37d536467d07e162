import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { calibrationReport, bootstrapMetrics } from "../src/eval/bootstrap.ts";
import { Rng } from "../src/util/rng.ts";
import { ece, equalWidthBin, binEdges } from "../src/eval/calibration.ts";
import { answerConfidence, labelProbability, samplingConfidence } from "../src/eval/confidence.ts";
import { repoRoot } from "../src/util/paths.ts";

const dir = join(repoRoot, "test", "fixtures", "calibration");
const close = (got: number | null, want: number | null, what: string) => {
  if (want === null || got === null) return assert.equal(got, want, `${what}: got ${got}, want ${want}`);
  assert.ok(Math.abs(got - want) <= 1e-12 + 1e-9 * Math.abs(want), `${what}: got ${got}, want ${want}`);
};
const closeArray = (got: readonly (number | null)[], want: readonly (number | null)[], what: string) => {
  assert.equal(got.length, want.length, `${what}: length`);
  want.forEach((w, i) => close(got[i] ?? null, w, `${what}[${i}]`));
};

const vectors = readdirSync(dir).filter((f) => f.endsWith(".json") && f !== "confidence_sources.json");

test("every calibration vector file is covered", () => {
  assert.ok(vectors.length >= 8, `found ${vectors.join(", ")}`);
});

for (const file of vectors) {
  test(`calibration vector ${file}`, () => {
    const v = JSON.parse(readFileSync(join(dir, file), "utf8"));
    const { labels, confidences, groups } = v.inputs;
    const e = v.expected;
    const b = v.bootstrap;
    const r = calibrationReport(labels, confidences, { draws: 0 });
    assert.equal(r.n, e.n);
    for (const key of [
      "base_rate", "ece_equal_width_15", "ece_equal_mass_15", "mce_15", "brier", "nll", "auroc", "average_precision", "aurc",
      "aurc_optimal", "aurc_optimal_closed_form", "eaurc", "ece_top_label_15", "ece_classwise_15", "ece_equal_width_10",
    ] as const) {
      close(r[key] as number | null, e[key], key);
    }
    assert.equal(r.nll_clipped_rows, e.nll_clipped_rows);
    assert.deepEqual(r.reliability_diagram.index, e.bin_index_equal_width_15);
    assert.deepEqual(r.reliability_diagram.edges, e.reliability_diagram.edges);
    assert.deepEqual(r.reliability_diagram.counts, e.reliability_diagram.counts);
    for (const key of ["mean_confidence", "accuracy", "gap"] as const) closeArray(r.reliability_diagram[key], e.reliability_diagram[key], `reliability_diagram.${key}`);
    assert.deepEqual(r.reliability_diagram_10.edges, e.reliability_diagram_10.edges);
    assert.deepEqual(r.reliability_diagram_10.counts, e.reliability_diagram_10.counts);
    for (const key of ["mean_confidence", "accuracy"] as const) closeArray(r.reliability_diagram_10[key], e.reliability_diagram_10[key], `reliability_diagram_10.${key}`);
    assert.deepEqual(r.equal_mass_bins.counts, e.equal_mass_bins.counts);
    for (const key of ["mean_confidence", "accuracy", "confidence_min", "confidence_max"] as const) closeArray(r.equal_mass_bins[key], e.equal_mass_bins[key], `equal_mass_bins.${key}`);
    for (const key of ["threshold", "coverage", "risk"] as const) closeArray(r.risk_coverage[key], e.risk_coverage[key], `risk_coverage.${key}`);
    if (b) {
      const rng = new Rng(b.seed);
      closeArray(b.prng_first_outputs.map(() => rng.next()), b.prng_first_outputs, "prng_first_outputs");
      const boot = bootstrapMetrics(labels, confidences, { seed: b.seed, draws: b.draws, level: b.level, groups: b.resample === "groups" ? groups : undefined });
      assert.equal(boot.resample, b.resample);
      assert.deepEqual(boot.first_draw_group_indices, b.first_draw_group_indices);
      assert.deepEqual(boot.valid_draws, b.valid_draws);
      for (const [key, want] of Object.entries(b.ci) as [keyof typeof boot.ci, [number, number] | null][]) {
        const got = boot.ci[key];
        if (want === null) assert.equal(got, null, `ci.${key}`);
        else closeArray(got!, want, `ci.${key}`);
      }
    }
  });
}

test("confidence_sources: label normalisation, answer confidences, count / k", () => {
  const v = JSON.parse(readFileSync(join(dir, "confidence_sources.json"), "utf8"));
  for (const row of v.label_normalisation) {
    const got = labelProbability(row.sufficient_token_logprobs, row.insufficient_token_logprobs);
    close(got.logprobPositive, row.logprob_sufficient, "logprob_sufficient");
    close(got.logprobNegative, row.logprob_insufficient, "logprob_insufficient");
    close(got.probability, row.p_sufficient, "p_sufficient");
    close(got.logLabelMass, row.log_label_mass, "log_label_mass");
  }
  for (const row of v.answer_token_logprobs) {
    const got = answerConfidence(row.token_logprobs)!;
    close(got.meanLogprob, row.mean_logprob, "mean_logprob");
    close(got.minLogprob, row.min_logprob, "min_logprob");
    close(got.geometricMean, row.confidence_geometric_mean, "confidence_geometric_mean");
    close(got.minToken, row.confidence_min_token, "confidence_min_token");
  }
  assert.equal(answerConfidence([]), null);
  for (const row of v.sampling_consistency) {
    assert.equal(samplingConfidence(row.agree), row.confidence);
  }
});

test("edge values land in the bin calibration.md's table gives", () => {
  const edges = binEdges(15);
  const cases: [number, number][] = [[0, 0], [1 / 15, 0], [0.2, 2], [1 / 3, 4], [0.5, 7], [2 / 3, 9], [1 - 1 / 3, 10], [11 / 15, 10], [0.7333333333333334, 11], [1, 14]];
  for (const [c, bin] of cases) assert.equal(equalWidthBin(c, edges), bin, `c = ${c}`);
});

test("ECE is near 0 for a calibrated synthetic sample and near the gap for an overconfident one", () => {
  const rng = new Rng(11);
  const n = 20000;
  const c = Array.from({ length: n }, () => rng.next());
  const calibrated = c.map((p) => (rng.next() < p ? 1 : 0));
  assert.ok(ece(calibrated, c) < 0.02, `calibrated ECE ${ece(calibrated, c)}`);
  // Always says 0.95, right 60% of the time: the gap is 0.35.
  const conf = Array.from({ length: n }, () => 0.95);
  const labels = conf.map(() => (rng.next() < 0.6 ? 1 : 0));
  assert.ok(Math.abs(ece(labels, conf) - 0.35) < 0.02, `overconfident ECE ${ece(labels, conf)}`);
});

test("bad inputs name the index and value", () => {
  assert.throws(() => calibrationReport([1, 2], [0.5, 0.5]), /labels\[1\] = 2/);
  assert.throws(() => calibrationReport([1, 0], [0.5, 1.5]), /confidences\[1\] = 1.5/);
  assert.throws(() => calibrationReport([1, 0], [0.5, Number.NaN]), /confidences\[1\]/);
  assert.equal(calibrationReport([1, 0], [0.5, 1 + 1e-13], { draws: 0 }).n, 2);
});
