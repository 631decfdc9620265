"""Typed records of a run as the report reads it (`LoadedRun`) and of what report.json holds (`RunReport`),
schema_version 2, in the unit convention of harness/run_schema.py (seconds, USD, GB, fractions 0-1).

report.json keeps one entry per strategy: its metrics (as in metrics.json) with its `cost` and the
`benchmarks` of the weights it answers with nested in it, and a `units` map for every figure. A
report.json of schema 1 is not parsed: `terminal_summary` rebuilds the analysis from the run's files,
which any schema can (`harness.report.load_run`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from harness.run_schema import SCHEMA_VERSION, StrategyMetrics, unit, units_of


@dataclass(frozen=True)
class Cost:
    """What a strategy that ran costs, at the task's prices (`cost:` in task.yaml)."""

    one_time: float = unit("USD", 0.0)
    """What its builds (index, training) cost when first done, each at the price of the machine it ran on."""
    one_time_compute: float = unit("s", 0.0)
    """Machine time of those builds."""
    one_time_devices: tuple[str, ...] = ()
    """Where they ran ("cpu", "cuda")."""
    per_answer_compute: float = unit("s", 0.0)
    """Compute per answer (generation share plus retrieval)."""
    per_1k_answers: float = unit("USD", 0.0)
    """Serving cost of 1,000 answers on the serving device."""
    tokens_per_answer: float = unit("tokens/answer", 0.0)
    """Prompt plus completion tokens per answer, mean."""
    hosted_per_1k_answers: float | None = unit("USD")
    """What 1,000 answers would cost on a hosted API at cost.hosted_usd_per_1k_tokens; None when unpriced."""
    total_at_volume: float = unit("USD", 0.0)
    """One-time cost plus serving cost of cost.expected_answers answers."""
    shared: dict[str, list[str]] = field(default_factory=dict)
    """Builds shared with other strategies: {what: [strategies]} (counted in each one's one-time cost)."""

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Cost:
        return cls(**{**raw, "one_time_devices": tuple(raw.get("one_time_devices") or ())})


@dataclass(frozen=True)
class LoadedRun:
    """A run directory's files, each parsed once (`harness.report.load_run`)."""

    config: dict[str, Any]
    """config.json, with the defaults of keys added since the run was made."""
    run: dict[str, Any]
    """run.json: what was asked."""
    split: dict[str, Any]
    """split.json: sizes, test ids, warnings, contamination."""
    environment: dict[str, Any]
    """environment.json."""
    metrics: dict[str, StrategyMetrics]
    """Per strategy, in run order; one that left no metrics.json is "not run"."""
    items: dict[str, list[dict[str, Any]]]
    """Per strategy that ran, its predictions.jsonl rows (score as a fraction, latency in seconds)."""
    benchmarks: dict[str, Any]
    """benchmarks.json in its current layout ({weights, by_strategy, forgetting, warnings})."""
    served: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per exported strategy, its export/<strategy>/served.json (harness/report_served.py)."""
    served_problems: list[str] = field(default_factory=list)
    timings: dict[str, Any] = field(default_factory=dict)
    """timings.json: the wall time of each phase of the run (s); empty for runs made before it existed."""
    """One line per served.json that could not be read (the report's warnings)."""

    @property
    def ran(self) -> dict[str, StrategyMetrics]:
        return {n: m for n, m in self.metrics.items() if m.ok}


@dataclass(frozen=True)
class RunReport:
    """Everything the report shows: report.json."""

    task: str
    description: str
    run_dir: str
    """Where the run lives (its final folder, even when analysed while staged)."""
    run_id: str
    scorer: str
    warnings: list[str]
    split: dict[str, Any]
    """Example counts: {train, dev, test, scored} (items)."""
    strategies: dict[str, StrategyMetrics]
    costs: dict[str, Cost]
    """Per strategy that ran."""
    benchmarks: dict[str, dict[str, Any] | None]
    """Per strategy: MMLU/HumanEval results of the weights it answers with (score and stderr as fractions)."""
    pairs: list[dict[str, Any]]
    """Paired comparisons (harness.stats.PairResult): differences as fractions, p-values."""
    break_even: dict[str, dict[str, int | None]]
    """{trained strategy: {rival: answers after which its extra one-time cost is repaid}} (answers)."""
    forgetting: dict[str, dict[str, Any]]
    """Per strategy: per benchmark {delta (fraction), p_value, significant_drop}."""
    verdict: dict[str, Any]
    what_would_change: list[str]
    criteria: list[dict[str, str]]
    config: dict[str, Any]
    environment: dict[str, Any]
    contamination: dict[str, Any]
    latencies: dict[str, list[float]] = field(default_factory=dict, metadata={"unit": "s"})
    """Per strategy, the latency of each test item in the scoring pass."""
    served: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per exported strategy, its served.json: the GGUF files re-scored on the test items (absent when none)."""
    timings: dict[str, Any] = field(default_factory=dict)
    """timings.json: the wall time of each phase of the run (s); absent from report.json for older runs."""

    @property
    def ran(self) -> dict[str, StrategyMetrics]:
        return {n: m for n, m in self.strategies.items() if m.ok}

    def to_json(self) -> dict[str, Any]:
        """report.json: each strategy's metrics with its cost and benchmarks nested, and the `units` map."""
        out: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
        for f in dataclasses.fields(self):
            # No export, no `served` key: report.json stays as it was before exports existed.
            nested = f.name in ("strategies", "costs", "benchmarks", "break_even")
            if not nested and (f.name not in ("served", "timings") or getattr(self, f.name)):
                out[f.name] = getattr(self, f.name)
        out["break_even_answers"] = self.break_even
        out["strategies"] = {}
        for name, m in self.strategies.items():
            entry = {k: v for k, v in m.to_json().items() if k not in ("schema_version", "units")}
            cost = self.costs.get(name)
            entry["cost"] = dataclasses.asdict(cost) if cost is not None else None
            entry["benchmarks"] = self.benchmarks.get(name)
            out["strategies"][name] = entry
        units = {f"strategies.*.{k}": v for k, v in units_of(StrategyMetrics).items()}
        units |= {f"strategies.*.cost.{k}": v for k, v in units_of(Cost).items()}
        out["units"] = units | {"latencies": "s", "break_even_answers": "answers",
                                "pairs.diff": "fraction", "pairs.ci_low": "fraction", "pairs.ci_high": "fraction"}
        if self.served:
            from harness.report_served import UNITS

            out["units"] |= UNITS
        if self.timings:
            out["units"] |= {"timings.total_s": "s", "timings.phases.seconds": "s"}
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str = "report.json") -> RunReport:
        """Parse a report.json of this schema (callers rebuild older ones from the run's files)."""
        strategies, costs, benchmarks = {}, {}, {}
        for name, entry in raw["strategies"].items():
            entry = dict(entry)
            cost, benchmarks[name] = entry.pop("cost", None), entry.pop("benchmarks", None)
            strategies[name] = StrategyMetrics.from_dict(entry, f"{where}: strategies.{name}")
            if cost is not None:
                costs[name] = Cost.from_dict(cost)
        names = {f.name for f in dataclasses.fields(cls)} - {"strategies", "costs", "benchmarks", "break_even"}
        return cls(**{k: raw[k] for k in names if k in raw}, strategies=strategies, costs=costs,
                   benchmarks=benchmarks, break_even=raw.get("break_even_answers") or {})
