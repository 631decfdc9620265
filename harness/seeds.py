"""Training-seed variance in words and a table: what the verdict, the caveats and the report say about an arm
answered by several training seeds (`finetune.seeds`, harness/runner.py `other_seeds`), or by only one.

A fine-tune's score moves with its seed (LoRA initialization, data order). With N seeds the arm's score is the
mean of its N adapters and its interval and paired tests resample seeds and items (harness.stats
`two_level_bootstrap`); with one seed the interval counts the item sampling only, which the caveat says.
"""

from __future__ import annotations

import pandas as pd

from harness.report_format import md_table
from harness.run_schema import StrategyMetrics


def _scores(m: StrategyMetrics) -> str:
    assert m.seeds is not None
    return ", ".join(f"{s:.3f}" for s in m.seeds.scores)


def verdict_sentences(metrics: dict[str, StrategyMetrics], shown: list[str]) -> list[str]:
    """For each of `shown` (the choice and its rivals) answered by several seeds: what its figures rest on."""
    out = []
    for name in shown:
        m = metrics[name]
        if m.seeds is None or len(m.seeds.seeds) < 2:
            continue
        r = m.seeds
        out.append(f"{name}'s score {m.score:.3f} is the mean of {len(r.seeds)} training seeds ({_scores(m)}; "
                   f"standard deviation {r.sd:.3f}, range {r.max - r.min:.3f}); its 95% interval "
                   f"[{m.ci_low:.3f}, {m.ci_high:.3f}] and its paired tests resample seeds and items (two-level "
                   "bootstrap), so a win over it or by it holds across seeds, not for one lucky seed.")
    return out


def one_seed_caveats(metrics: dict[str, StrategyMetrics], trained: list[str]) -> list[str]:
    """A trained arm that rests on one training seed: its interval misses the seed-to-seed spread."""
    single = [n for n in trained if metrics[n].ok and (metrics[n].seeds is None or len(metrics[n].seeds.seeds) < 2)]
    if not single:
        return []
    return [f"{' and '.join(single)} {'rests' if len(single) == 1 else 'rest'} on one training seed: "
            f"{'its' if len(single) == 1 else 'their'} interval and paired tests count the test items' sampling "
            "only, while a fine-tune's score also moves with its seed (initialization, data order). Set "
            "`finetune.seeds: 3` to measure that spread into the verdict."]


def seeds_body(metrics: dict[str, StrategyMetrics]) -> str | None:
    """The report's "Training seeds" section: per arm, each seed's score, best epoch and training time."""
    parts = []
    for name, m in metrics.items():
        r = m.seeds
        if not m.ok or r is None:
            continue
        rows = [{"seed": seed, "score": f"{score:.3f}",
                 "best epoch": "—" if epoch is None else str(epoch),
                 "training (s)": f"{seconds:.0f}" + (" (cached)" if reused else ""),
                 "adapter": f"`{adapter}`" if adapter else "—"}
                for seed, score, epoch, seconds, reused, adapter in zip(
                    r.seeds, r.scores, _pad(r.best_epochs, r.seeds), _pad(r.train_seconds, r.seeds, 0.0),
                    _pad(r.reused, r.seeds, False), _pad(r.adapters, r.seeds))]
        parts.append(f"### {name}\n\n{len(r.seeds)} seeds: mean {r.mean:.3f}, standard deviation {r.sd:.3f}, "
                     f"range {r.min:.3f} to {r.max:.3f}; 95% CI of the mean [{m.ci_low:.3f}, {m.ci_high:.3f}] by "
                     f"{r.ci_method}. Latency, MMLU/HumanEval and export use seed {r.seeds[0]}'s adapter "
                     f"(score {r.first_seed_score:.3f}); the extra seeds are an evaluation cost, not counted in the "
                     "one-time cost, which is one training.\n\n" + md_table(pd.DataFrame(rows)))
    return "\n\n".join(parts) or None


def _pad(values: list | None, like: list, fill=None) -> list:
    values = list(values or [])
    return values + [fill] * (len(like) - len(values))
