/**
 * The arithmetic of the confidence sources (calibration.md section 1), in float64 on log-probs:
 * (a) P(Sufficient) from summed label token log-probs, (b) P(refuse), (c) answer token
 * log-probabilities, (d) sampling consistency as count / k.
 */

/** log(e^a + e^b) without overflow or underflow. */
export function logAddExp(a: number, b: number): number {
  if (a === -Infinity) return b;
  if (b === -Infinity) return a;
  return Math.max(a, b) + Math.log1p(Math.exp(-Math.abs(a - b)));
}

/** σ(d) computed stably on both sides. */
export function sigmoid(d: number): number {
  if (d >= 0) return 1 / (1 + Math.exp(-d));
  const e = Math.exp(d);
  return e / (1 + e);
}

const sum = (xs: readonly number[]): number => xs.reduce((s, v) => s + v, 0);

export interface LabelProbability {
  /** ℓ_S: sum of the positive label's token log-probs. */
  logprobPositive: number;
  logprobNegative: number;
  /** σ(ℓ_S − ℓ_I): the two-label softmax. */
  probability: number;
  /** log(e^ℓ_S + e^ℓ_I): low when the model wanted to say something else. */
  logLabelMass: number;
}

/**
 * Source (a): P(label 1) from the token log-probs of two label continuations scored by teacher
 * forcing (sums, not means: the probability of the whole label string).
 */
export function labelProbability(positiveTokenLogprobs: readonly number[], negativeTokenLogprobs: readonly number[]): LabelProbability {
  const ls = sum(positiveTokenLogprobs);
  const li = sum(negativeTokenLogprobs);
  return { logprobPositive: ls, logprobNegative: li, probability: sigmoid(ls - li), logLabelMass: logAddExp(ls, li) };
}

export interface AnswerConfidence {
  meanLogprob: number;
  minLogprob: number;
  /** exp(mean): the geometric-mean token probability (R-Tuning's predict_conf for ParaRel). */
  geometricMean: number;
  /** exp(min): the least certain token. */
  minToken: number;
}

/** Source (c). The stop token must not be in the list. An empty answer has no confidence: null. */
export function answerConfidence(tokenLogprobs: readonly number[]): AnswerConfidence | null {
  if (tokenLogprobs.length === 0) return null;
  const mean = sum(tokenLogprobs) / tokenLogprobs.length;
  const min = Math.min(...tokenLogprobs);
  return { meanLogprob: mean, minLogprob: min, geometricMean: Math.exp(mean), minToken: Math.exp(min) };
}

/**
 * Source (d): the fraction of samples that agree, as count / k in one division (never
 * 1 − (k − count) / k, which lands one ulp off a bin edge).
 */
export function samplingConfidence(agree: readonly boolean[]): number {
  if (agree.length === 0) throw new Error("samplingConfidence: no samples");
  return agree.filter(Boolean).length / agree.length;
}

/** Source (b), variant 1: P(refuse) = exp(sum of the refusal string's token log-probs). */
export const refusalProbability = (refusalTokenLogprobs: readonly number[]): number => Math.exp(sum(refusalTokenLogprobs));
