"""Paired comparisons of strategies on the same test items.

Binary scores (exact match, choice letter, contains): McNemar's test on the discordant pairs
(statsmodels; exact binomial below 25 discordant pairs, chi-square otherwise). Continuous scores
(token F1, ROUGE-L): a sign-flip permutation test of the mean difference (scipy; exact up to
2^12 sign patterns), with a seeded paired bootstrap for its 95% CI. p-values across all pairs are
Holm-corrected (statsmodels). A difference that is not significant after correction is a tie.

A strategy answered by several training seeds (`finetune.seeds`) has a score per item and seed. Its
pairs use a two-level bootstrap instead (`two_level_bootstrap`, the "multi-bootstrap" of Sellam et al.,
2022, The MultiBERTs): each resample draws the items, paired across both strategies, and each side's seeds,
both with replacement, so the interval holds the seed-to-seed spread as well as the item sampling. Its
two-sided p is read off the same resamples (twice the smaller share on either side of zero), so a pair
is significant exactly when that interval, after Holm, excludes zero.

Also the sensitivity of a general benchmark: whether a model is above chance on it, and the smallest
drop it could detect at its number of items (`min_detectable_drop`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from itertools import combinations
from typing import Any

import numpy as np

ALPHA = 0.05
BOOTSTRAP_RESAMPLES = 5000


@dataclass(frozen=True)
class PairResult:
    a: str
    b: str
    n: int
    """Items both strategies answered (paired by id)."""
    mean_a: float
    mean_b: float
    diff: float
    """mean_a - mean_b."""
    ci_low: float
    ci_high: float
    """95% CI of the difference (paired bootstrap)."""
    test: str
    p_value: float
    p_holm: float
    significant: bool
    verdict: str
    """'a better', 'b better' or 'tie', in words for the report."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def mcnemar_p(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided McNemar p-value for paired binary outcomes."""
    from statsmodels.stats.contingency_tables import mcnemar

    a, b = a.astype(bool), b.astype(bool)
    table = [[int(np.sum(a & b)), int(np.sum(a & ~b))], [int(np.sum(~a & b)), int(np.sum(~a & ~b))]]
    discordant = table[0][1] + table[1][0]
    if discordant == 0:
        return 1.0
    return float(mcnemar(table, exact=discordant < 25, correction=True).pvalue)


def paired_bootstrap_ci(a: np.ndarray, b: np.ndarray, seed: int = 0,
                        resamples: int = BOOTSTRAP_RESAMPLES) -> tuple[float, float]:
    """95% CI of mean(a - b) by resampling items with replacement (zero-width when every difference is equal)."""
    diffs = a - b
    if np.all(diffs == diffs[0]):
        return float(diffs[0]), float(diffs[0])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(diffs), size=(resamples, len(diffs)))
    low, high = np.percentile(diffs[idx].mean(axis=1), [2.5, 97.5])
    return float(low), float(high)


def sign_flip_p(a: np.ndarray, b: np.ndarray, seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES) -> float:
    """Two-sided p of mean(a - b) = 0 by flipping the signs of the paired differences (scipy permutation_test).

    Not read off the bootstrap: with a handful of items every resample can land on one side of zero
    (p = 0 on 2 items). Sign flips are exact below 13 items: two items that both moved the same way
    give p = 0.5, which is what two coin flips can do."""
    from scipy.stats import permutation_test

    diffs = a - b
    if np.all(diffs == 0):
        return 1.0
    test = permutation_test((diffs,), lambda x, axis: np.mean(x, axis=axis), permutation_type="samples",
                            vectorized=True, n_resamples=resamples, batch=500, alternative="two-sided",
                            rng=np.random.default_rng(seed))
    return float(min(1.0, test.pvalue))


def paired_bootstrap(a: np.ndarray, b: np.ndarray, seed: int = 0,
                     resamples: int = BOOTSTRAP_RESAMPLES) -> tuple[float, float, float]:
    """(ci_low, ci_high, two-sided p) of mean(a - b): `paired_bootstrap_ci` and `sign_flip_p` together."""
    return (*paired_bootstrap_ci(a, b, seed, resamples), sign_flip_p(a, b, seed, resamples))


def _seed_weights(rng: np.random.Generator, k: int, resamples: int) -> np.ndarray:
    """(resamples x k) weights: the share of each of k seeds in a draw of k seeds with replacement."""
    draws = rng.integers(0, k, size=(resamples, k))
    return np.stack([np.bincount(row, minlength=k) for row in draws]) / k


def two_level_bootstrap(a: np.ndarray, b: np.ndarray | None = None, seed: int = 0,
                        resamples: int = BOOTSTRAP_RESAMPLES) -> tuple[float, float, float]:
    """(ci_low, ci_high, two-sided p) of mean(a) - mean(b), resampling items and seeds.

    `a` and `b` are (items x seeds) score matrices on the same items in the same order (a strategy with one
    seed is one column); `b` None gives the CI of mean(a) alone (its p tests mean(a) = 0). Each resample
    draws n items with replacement (the same items for both sides: the test is paired) and, independently
    per side, k seeds with replacement. With few seeds the seed-level spread is underestimated by about
    (k-1)/k, as with any bootstrap of k values: three seeds are a floor, not a luxury."""
    a = np.atleast_2d(np.asarray(a, dtype=float).T).T
    n = a.shape[0]
    rng = np.random.default_rng(seed)
    items = rng.integers(0, n, size=(resamples, n))
    per_item = a @ _seed_weights(rng, a.shape[1], resamples).T  # (n x resamples)
    if b is not None:
        b = np.atleast_2d(np.asarray(b, dtype=float).T).T
        assert b.shape[0] == n, "both strategies are scored on the same items"
        per_item = per_item - b @ _seed_weights(rng, b.shape[1], resamples).T
    stats = np.take_along_axis(per_item.T, items, axis=1).mean(axis=1)
    low, high = np.percentile(stats, [2.5, 97.5])
    if np.all(stats == stats[0]):
        p = 1.0 if stats[0] == 0 else 1 / (resamples + 1)
    else:
        tail = min(np.sum(stats <= 0), np.sum(stats >= 0))
        p = min(1.0, 2 * (tail + 1) / (resamples + 1))
    return float(low), float(high), float(p)


def holm(p_values: list[float]) -> list[float]:
    from statsmodels.stats.multitest import multipletests

    if not p_values:
        return []
    return [float(p) for p in multipletests(p_values, alpha=ALPHA, method="holm")[1]]


TWO_LEVEL = "two-level bootstrap (seeds x items)"


def compare_strategies(scores: dict[str, dict[str, float]], binary: bool, seed: int = 0,
                       seeds: dict[str, dict[str, list[float]]] | None = None) -> list[PairResult]:
    """Every pair of strategies, on the items both answered, with Holm-corrected significance.

    `seeds` maps a strategy answered by several training seeds to {item id: [score per seed]}; a pair with
    such a strategy is tested by `two_level_bootstrap`, and its means are over seeds."""
    seeds = {name: by_id for name, by_id in (seeds or {}).items() if by_id}
    raw = []
    for a, b in combinations(scores, 2):
        ids = sorted(set(scores[a]) & set(scores[b]))
        if not ids:
            continue
        if a in seeds or b in seeds:
            x, y = (np.array([seeds[s][i] if s in seeds else [scores[s][i]] for i in ids], dtype=float)
                    for s in (a, b))
            low, high, p = two_level_bootstrap(x, y, seed)
            raw.append((a, b, len(ids), x.mean(), y.mean(), low, high, TWO_LEVEL, p))
            continue
        x = np.array([scores[a][i] for i in ids], dtype=float)
        y = np.array([scores[b][i] for i in ids], dtype=float)
        low, high = paired_bootstrap_ci(x, y, seed)
        p = mcnemar_p(x, y) if binary else sign_flip_p(x, y, seed)
        test = "McNemar" if binary else "sign-flip permutation"
        raw.append((a, b, len(ids), x.mean(), y.mean(), low, high, test, p))
    adjusted = holm([r[-1] for r in raw])
    results = []
    for (a, b, n, ma, mb, low, high, test, p), p_adj in zip(raw, adjusted):
        significant = p_adj < ALPHA
        verdict = "tie" if not significant else (f"{a} better" if ma > mb else f"{b} better")
        results.append(PairResult(a, b, n, float(ma), float(mb), float(ma - mb), low, high, test, p, p_adj,
                                  significant, verdict))
    return results


def above_chance(successes: int, n: int, chance: float, alpha: float = ALPHA) -> tuple[bool, float]:
    """(above, p): is `successes` of `n` significantly above the `chance` rate (one-sided exact binomial, scipy)?

    At chance 0 (a floor, as HumanEval's pass rate) one success is already above it."""
    from scipy.stats import binomtest

    if chance <= 0:
        return successes > 0, 0.0 if successes > 0 else 1.0
    p = float(binomtest(successes, n, chance, alternative="greater").pvalue)
    return p < alpha, p


def min_detectable_drop(p_base: float, n: int, alpha: float = ALPHA, power: float = 0.8) -> float | None:
    """The smallest fall from `p_base` that a test on `n` items detects with `power` at two-sided `alpha`.

    Method: the two-proportion normal approximation on Cohen's arcsine effect size h (statsmodels
    `NormalIndPower`, n items per arm), solved for h and turned back into a rate:
    p_after = sin(asin(sqrt(p_base)) - h / 2)^2. Forgetting is tested on the same items (McNemar),
    which is more sensitive than two independent samples when base and fine-tune agree on most items,
    so this figure is an upper bound on the smallest detectable drop. None when even a fall to 0 is
    below that size (the base rate is too low for n items).
    """
    from statsmodels.stats.power import NormalIndPower

    if n < 2 or p_base <= 0:
        return None
    h = float(NormalIndPower().solve_power(effect_size=None, nobs1=n, alpha=alpha, power=power, ratio=1.0,
                                           alternative="two-sided"))
    angle = float(np.arcsin(np.sqrt(p_base))) - h / 2
    if angle < 0:
        return None
    return p_base - float(np.sin(angle) ** 2)
