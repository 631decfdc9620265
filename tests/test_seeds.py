"""Training-seed variance: the two-level bootstrap (harness.stats) and what the verdict and report say
(harness/seeds.py). The end-to-end run with `finetune.seeds: 2` is in test_finetune_e2e.py."""

from __future__ import annotations

import numpy as np
import pytest

from harness.metrics import bootstrap_ci
from harness.run_schema import StrategyMetrics
from harness.seeds import one_seed_caveats, seeds_body, verdict_sentences
from harness.stats import TWO_LEVEL, compare_strategies, two_level_bootstrap


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _simulated_arm(rng, items: int, seeds: int, mu=0.5, item_sd=1.5, seed_sd=0.6) -> np.ndarray:
    """(items x seeds) 0/1 scores: item difficulty and seed effect on the logit, both drawn afresh."""
    difficulty = rng.normal(0, item_sd, items)
    effect = rng.normal(0, seed_sd, seeds)
    return (rng.random((items, seeds)) < _sigmoid(mu + difficulty[:, None] + effect[None, :])).astype(float)


def test_two_level_interval_covers_the_mean_over_seeds_and_items_one_seeds_interval_does_not():
    """The arm's expected score over the populations of items and seeds is the target; with a real seed
    effect, one seed's item bootstrap misses it far more often than 5%, the two-level bootstrap about 5%."""
    rng = np.random.default_rng(7)
    truth = _sigmoid(0.5 + rng.normal(0, 1.5, 2_000_000) + rng.normal(0, 0.6, 2_000_000)).mean()
    trials, two_level, one_seed = 200, 0, 0
    for trial in range(trials):
        scores = _simulated_arm(rng, items=100, seeds=5)
        low, high, _ = two_level_bootstrap(scores, seed=trial, resamples=2000)
        two_level += low <= truth <= high
        low, high = bootstrap_ci(list(scores[:, 0]), seed=trial)
        one_seed += low <= truth <= high
    assert two_level / trials >= 0.9, f"two-level coverage {two_level / trials:.2f}"
    assert one_seed / trials <= 0.8, f"one-seed coverage {one_seed / trials:.2f}"


def test_a_lucky_seed_is_a_win_on_its_own_and_a_tie_across_seeds():
    """One seed far above the others: its paired test against the baseline is significant, the arm's is not."""
    rng = np.random.default_rng(3)
    n = 300
    baseline = (rng.random(n) < 0.6).astype(float)
    seeds = np.stack([(rng.random(n) < p).astype(float) for p in (0.75, 0.55, 0.58)], axis=1)
    ids = [f"i{k}" for k in range(n)]
    lucky = {"base": dict(zip(ids, baseline)), "tuned": dict(zip(ids, seeds[:, 0]))}
    (alone,) = compare_strategies(lucky, binary=True)
    assert alone.significant and alone.verdict == "tuned better"
    across = {"base": dict(zip(ids, baseline)), "tuned": dict(zip(ids, seeds.mean(axis=1)))}
    (pair,) = compare_strategies(across, binary=True, seeds={"tuned": dict(zip(ids, seeds.tolist()))})
    assert pair.test == TWO_LEVEL and not pair.significant and pair.verdict == "tie"
    assert pair.ci_low < 0 < pair.ci_high and pair.diff == pytest.approx(baseline.mean() - seeds.mean())


def test_two_level_bootstrap_agrees_with_the_item_bootstrap_when_seeds_agree():
    rng = np.random.default_rng(5)
    a = (rng.random(400) < 0.8).astype(float)
    b = (rng.random(400) < 0.7).astype(float)
    same = np.stack([a, a, a], axis=1)  # three seeds, identical answers: no seed variance to add
    low, high, p = two_level_bootstrap(same, b, seed=1)
    from harness.stats import paired_bootstrap_ci

    ref_low, ref_high = paired_bootstrap_ci(a, b, seed=1)
    assert abs(low - ref_low) < 0.015 and abs(high - ref_high) < 0.015 and p < 0.05
    assert two_level_bootstrap(same, same, seed=1) == (0.0, 0.0, 1.0)


def _metrics(name: str, seeds: list[int] | None, scores: list[float] | None = None) -> StrategyMetrics:
    raw = {"strategy": name, "status": "ok", "n": 100, "score": 0.9, "ci_low": 0.85, "ci_high": 0.94,
           "latency_p50": 0.1, "latency_p95": 0.2, "compute_per_answer": 0.1, "prompt_tokens_mean": 50,
           "completion_tokens_mean": 5,
           "fit": {"seconds": 1.0, "device": "cpu", "details": {}, "complexity": 2,
                   "weights": {"kind": "adapter", "adapter_dir": f"{name}/adapter", "content_id": "k"}}}
    if seeds:
        raw["seeds"] = {"seeds": seeds, "scores": scores, "mean": float(np.mean(scores)),
                        "sd": float(np.std(scores, ddof=1)), "min": min(scores), "max": max(scores),
                        "first_seed_score": scores[0], "best_epochs": [2] * len(seeds),
                        "train_seconds": [60.0] * len(seeds), "reused": [False] * len(seeds),
                        "adapters": [f"{name}/adapter"] + [f"{name}.seed-{s}/adapter" for s in seeds[1:]]}
    return StrategyMetrics.from_dict(raw)


def test_verdict_says_how_many_seeds_and_a_single_seed_is_a_caveat():
    three = {"finetune": _metrics("finetune", [0, 1, 2], [0.88, 0.91, 0.91])}
    (sentence,) = verdict_sentences(three, ["finetune"])
    assert "mean of 3 training seeds" in sentence and "0.880, 0.910, 0.910" in sentence
    assert "two-level" in sentence
    assert one_seed_caveats(three, ["finetune"]) == []
    one = {"finetune": _metrics("finetune", None)}
    assert verdict_sentences(one, ["finetune"]) == []
    (caveat,) = one_seed_caveats(one, ["finetune"])
    assert "one training seed" in caveat and "finetune.seeds: 3" in caveat


def test_report_section_lists_every_seed_and_the_metrics_parse_back():
    m = _metrics("finetune", [0, 1, 2], [0.88, 0.91, 0.91])
    assert StrategyMetrics.from_dict(m.to_json()).seeds == m.seeds
    body = seeds_body({"finetune": m, "prompt": _metrics("prompt", None)})
    assert body is not None and body.count("\n| ") >= 4  # header + 3 seeds
    assert "### finetune" in body and "### prompt" not in body and "`finetune.seed-2/adapter`" in body
    assert seeds_body({"prompt": _metrics("prompt", None)}) is None


def test_a_damaged_seed_record_is_named():
    from harness.errors import HarnessError

    raw = _metrics("finetune", [0, 1], [0.8, 0.9]).to_json()
    raw["seeds"] = {"seeds": [0, 1], "bogus": 1}
    with pytest.raises(HarnessError, match="field 'seeds'"):
        StrategyMetrics.from_dict(raw, "run/finetune/metrics.json")
