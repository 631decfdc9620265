"""Caveats: what a run's figures cannot show, each said as a plain sentence in the verdict block.

A small test set, a constant score, forgetting that was not measured, and general benchmarks too coarse
to see a drop (a base model at chance, or the smallest drop detectable at the benchmark's size).
"""

from __future__ import annotations

from typing import Any

from harness.metrics import MIN_TEST_ITEMS, wilson_ci
from harness.run_schema import StrategyMetrics
from harness.seeds import one_seed_caveats
from harness.stats import ALPHA, above_chance, min_detectable_drop

BENCHMARK_LABELS = {"mmlu": "MMLU", "humaneval": "HumanEval"}
CHANCE_LEVEL = {"mmlu": 0.25, "humaneval": 0.0}
"""Score of a model that guesses: MMLU has four choices; HumanEval's pass rate has a floor of 0."""
POWER = 0.8
"""Power of the smallest-detectable-drop statement (the usual 80%)."""


def own_weights(name: str, m: StrategyMetrics, bench: dict[str, Any]) -> bool:
    """Does this strategy answer with weights of its own (an adapter), which can forget? Its fit record says
    so, or benchmarks.json scored it on weights other than the base model's."""
    mapped = (bench.get("by_strategy") or {}).get(name)
    return m.record.weights.trained or (mapped is not None and mapped != "base")


def caveats(metrics: dict[str, StrategyMetrics], benchmarks: dict[str, Any] | None,
            split_sizes: dict[str, int] | None = None, alpha: float = ALPHA,
            config: dict[str, Any] | None = None) -> list[str]:
    """What the figures cannot show, in plain sentences: a small test set, constant scores, forgetting
    not measured, and general benchmarks too coarse to detect a drop.

    `benchmarks` is benchmarks.json ({} or None when absent); `split_sizes` is split.json's sizes;
    `alpha` the forgetting test's level (benchmarks.forgetting_alpha). Forgetting caveats appear only
    when a strategy answers with weights of its own; the chance-level one qualifies any benchmark figure.
    """
    ran = {n: m for n, m in metrics.items() if m.ok}
    if not ran:
        return []
    out = []
    n = (split_sizes or {}).get("scored") or min(m.n for m in ran.values())
    if n < MIN_TEST_ITEMS:
        low, high = wilson_ci(n / 2, n)
        out.append(f"The test set has only {n} scored items (fewer than {MIN_TEST_ITEMS}): at a 50% score the "
                   f"95% interval runs from {low:.2f} to {high:.2f}, so only large differences can be told apart.")
    for name, m in ran.items():
        if m.ci_degenerate and m.n:
            out.append(f"{name} scored {m.score:.3f} on each of its {m.n} items: its interval has zero width "
                       "because the sample is constant, not because the score is certain.")
    served = sorted({(m.serving.get("backend"), m.serving.get("quantization")) for m in ran.values() if m.serving})
    for backend, quantization in served:  # the same model answers differently on another engine and weights
        weights = f"{quantization} weights" if quantization else "weights of a type the backend does not report"
        out.append(f"Answers came from {backend} with {weights}; another backend (transformers runs "
                   "a GGUF model's float32 dequantization) can answer differently: compare runs on the same one.")
    bench = benchmarks or {}
    tuned = [name for name, m in ran.items() if own_weights(name, m, bench)]
    out += _untuned_baselines(ran, tuned, config or {})
    out += one_seed_caveats(ran, [n for n in tuned if ran[n].record.weights.trained])
    if tuned:
        out += _unmeasured(tuned, bench)
    elif not bench.get("weights"):
        out.append("MMLU/HumanEval were not run, so forgetting was not measured; no strategy here answers with "
                   "trained weights, so none could have forgotten.")
    for name, result in sorted(((bench.get("weights") or {}).get("base") or {}).items()):
        if result.get("status") == "ok" and result.get("n"):
            sentence = _sensitivity(name, result, alpha, bool(tuned))
            out += [sentence] if sentence else []
    return out


def _untuned_baselines(ran: dict[str, StrategyMetrics], tuned: list[str], config: dict[str, Any]) -> list[str]:
    """A fine-tune tuned on dev (early stopping) against baselines whose dev search was switched off."""
    off = [f"{section}.search" for section in ("prompt", "rag") if (config.get(section) or {}).get("search") is False]
    baselines = [n for n in ran if n not in tuned]
    if not (off and tuned and baselines):
        return []
    return [f"{' and '.join(off)} {'is' if len(off) == 1 else 'are'} off: {', '.join(baselines)} answered with the "
            f"settings as written while {', '.join(tuned)} used dev for early stopping, so a trained arm's win may "
            "come from an untuned baseline, not from training."]


def _unmeasured(tuned: list[str], bench: dict[str, Any]) -> list[str]:
    """Sentences for the fine-tuned weights whose forgetting no benchmark measured."""
    weights, by_strategy = bench.get("weights") or {}, bench.get("by_strategy") or {}
    if not weights:
        return [f"Forgetting was not measured: this run has no MMLU/HumanEval results (benchmarks.json is absent "
                f"or empty), so {' and '.join(tuned)} may have lost general abilities without this report showing it."]
    out = [f"Forgetting was not measured for {t}: its weights have no MMLU/HumanEval result."
           for t in tuned if by_strategy.get(t) not in weights]
    why: dict[str, str] = {}
    keys = list(dict.fromkeys(by_strategy.get(t) for t in tuned))
    for w in ["base", *keys]:
        for name, result in (weights.get(w) or {}).items():
            if result.get("status") != "ok":
                why.setdefault(name, result.get("skipped") or "it did not run")
    for w in keys:
        for name, f in ((bench.get("forgetting") or {}).get(w) or {}).items():
            if f.get("status") == "skipped":
                why.setdefault(name, f.get("skipped") or "base and fine-tune were not compared")
    return out + [f"Forgetting on {BENCHMARK_LABELS.get(name, name)} was not checked: {str(reason).rstrip('.')}."
                  for name, reason in sorted(why.items())]


def _sensitivity(name: str, result: dict[str, Any], alpha: float, tuned: bool) -> str | None:
    """Whether the base model's benchmark figure could reveal a drop: at chance, or the smallest detectable one."""
    label, n, score = BENCHMARK_LABELS.get(name, name), int(result["n"]), float(result["score"])
    chance = CHANCE_LEVEL.get(name, 0.0)
    items = result.get("items") or {}
    correct = int(sum(items.values())) if items else round(score * n)
    above, p = above_chance(correct, n, chance, alpha)
    if not above and chance > 0:
        return (f"{label} {score:.2f} vs chance {chance:.2f} on {n} items: the base model is not above chance "
                f"(one-sided binomial p = {p:.2g}), so forgetting cannot be detected on {label}.")
    if not above:
        return (f"{label} {result.get('metric', 'score')} {correct}/{n}: the base model solves none, so a drop "
                f"cannot be detected on {label}.")
    if not tuned:
        return None
    drop = min_detectable_drop(score, n, alpha, POWER)
    how = f"{POWER:.0%} power at alpha {alpha:g}, two-proportion approximation"
    if drop is None or drop > score - chance:
        return (f"{label} on {n} items (base {score:.2f}, chance {chance:.2f}) could not detect even a fall to "
                f"chance ({how}): a drop there would likely go unnoticed.")
    return (f"{label} on {n} items (base {score:.2f}) can only detect a drop of {drop:.2f} or more ({how}); "
            "smaller losses would go unnoticed.")
