"""Paired comparisons of strategies on the same test items.

Binary scores (exact match, choice letter, contains): McNemar's test on the discordant pairs
(statsmodels; exact binomial below 25 discordant pairs, chi-square otherwise). Continuous scores
(token F1, ROUGE-L): a seeded paired bootstrap of the mean difference. p-values across all pairs
are Holm-corrected (statsmodels). A difference that is not significant after correction is a tie.
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


def paired_bootstrap(a: np.ndarray, b: np.ndarray, seed: int = 0,
                     resamples: int = BOOTSTRAP_RESAMPLES) -> tuple[float, float, float]:
    """(ci_low, ci_high, two-sided p) of mean(a - b) by resampling items with replacement."""
    diffs = a - b
    if np.all(diffs == diffs[0]):
        return float(diffs[0]), float(diffs[0]), 1.0 if diffs[0] == 0 else 0.0
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(diffs), size=(resamples, len(diffs)))
    means = diffs[idx].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    # Share of resampled means on the other side of zero from the observed mean, two-sided.
    observed = diffs.mean()
    tail = np.mean(means <= 0) if observed > 0 else np.mean(means >= 0)
    return float(low), float(high), float(min(1.0, 2 * tail))


def holm(p_values: list[float]) -> list[float]:
    from statsmodels.stats.multitest import multipletests

    if not p_values:
        return []
    return [float(p) for p in multipletests(p_values, alpha=ALPHA, method="holm")[1]]


def compare_strategies(scores: dict[str, dict[str, float]], binary: bool, seed: int = 0) -> list[PairResult]:
    """Every pair of strategies, on the items both answered, with Holm-corrected significance."""
    raw = []
    for a, b in combinations(scores, 2):
        ids = sorted(set(scores[a]) & set(scores[b]))
        if not ids:
            continue
        x = np.array([scores[a][i] for i in ids], dtype=float)
        y = np.array([scores[b][i] for i in ids], dtype=float)
        low, high, p_boot = paired_bootstrap(x, y, seed)
        p = mcnemar_p(x, y) if binary else p_boot
        raw.append((a, b, len(ids), x.mean(), y.mean(), low, high, "McNemar" if binary else "paired bootstrap", p))
    adjusted = holm([r[-1] for r in raw])
    results = []
    for (a, b, n, ma, mb, low, high, test, p), p_adj in zip(raw, adjusted):
        significant = p_adj < ALPHA
        verdict = "tie" if not significant else (f"{a} better" if ma > mb else f"{b} better")
        results.append(PairResult(a, b, n, float(ma), float(mb), float(ma - mb), low, high, test, p, p_adj,
                                  significant, verdict))
    return results
