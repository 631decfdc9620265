"""Typed run records on disk: what a strategy's metrics.json holds (`StrategyMetrics`), schema_version 2.

One unit convention for every figure, said here and in each field's metadata, never in a key's name:

    time        seconds              "s"
    money       US dollars           "USD"
    memory      gigabytes, 10^9 B    "GB"
    scores      fraction, 0 to 1     "fraction" (the registered scorers; see harness/scoring.py)
    rates       per second           "answers/s", "tokens/s"
    counts      what is counted      "items", "answers", "tokens", "passages"

Every JSON file written from these types carries `schema_version` and a `units` map (field path ->
unit, nested fields as "retrieval.p50"), so a reader never guesses. `fit.details` is the strategy's own
free-form record (training, index) and keeps the names it was given.

Reading: `StrategyMetrics.from_dict` parses a metrics.json once. Schema 1 and older runs (no
`schema_version`; units in key suffixes such as `latency_p50_s`, retrieval figures flat, no typed fit)
load through `OLD_NAMES`, and their fit records are inferred by `FitRecord.from_dict`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from harness.errors import HarnessError
from harness.records import Build, FitRecord, Weights

SCHEMA_VERSION = 2


def unit(name: str, default: Any = None) -> Any:
    """A field with its unit in metadata (`units_of` collects them for the JSON's `units` map)."""
    return field(default=default, metadata={"unit": name})


def units_of(cls: type, prefix: str = "") -> dict[str, str]:
    """field path -> unit, for the fields of `cls` that carry one (nested records with their prefix)."""
    out = {f"{prefix}{f.name}": f.metadata["unit"] for f in dataclasses.fields(cls) if "unit" in f.metadata}
    for f in dataclasses.fields(cls):
        nested = NESTED.get((cls.__name__, f.name))
        if nested is not None:
            out.update(units_of(nested, f"{prefix}{f.name}."))
    return out


@dataclass(frozen=True)
class SeedRecord:
    """A trained arm answered by several training seeds (`finetune.seeds`): the arm's `score` is their mean and its
    interval the two-level bootstrap (harness.stats.two_level_bootstrap)."""

    seeds: list[int]
    """`finetune.seed` of each adapter, the first as configured (its adapter answers latency, benchmarks, export)."""
    scores: list[float] = unit("fraction")
    """Mean test score of each seed's adapter, in the order of `seeds`."""
    mean: float = unit("fraction")
    sd: float = unit("fraction")
    """Sample standard deviation of the per-seed scores (ddof 1)."""
    min: float = unit("fraction")
    max: float = unit("fraction")
    first_seed_score: float = unit("fraction")
    best_epochs: list[int | None] = unit("epochs")
    train_seconds: list[float] = unit("s")
    """Training time of each seed's adapter, as first measured (also when reused from the cache)."""
    reused: list[bool] = field(default_factory=list)
    """Each seed's adapter came from the training cache."""
    adapters: list[str | None] = field(default_factory=list)
    """Each seed's adapter folder, relative to the run directory."""
    ci_method: str = "two-level bootstrap (seeds x items)"


@dataclass(frozen=True)
class RetrievalMetrics:
    """How well a strategy's retrieval found the right passages, scored after answering with the test labels."""

    k: int = unit("passages", 0)
    """Passages retrieved per query."""
    labeled: int = unit("items", 0)
    """Test items with a usable label (a source document, or an answer found verbatim in a chunk)."""
    hit_at_k: float | None = unit("fraction")
    """Share of labeled items whose right passage is in the top k (source label first, else answer label)."""
    mrr: float | None = unit("fraction")
    """Mean reciprocal rank of the right passage (0 when not in the top k)."""
    by_source: dict[str, Any] = field(default_factory=dict)
    """{n (items), hit_at_k (fraction), mrr (fraction)} over the items that name their source document."""
    by_answer: dict[str, Any] = field(default_factory=dict)
    """{n (items), hit_at_k (fraction), mrr (fraction)} over the items whose answer is verbatim in a chunk."""
    p50: float | None = unit("s")
    """Median retrieval time per answer."""
    p95: float | None = unit("s")
    """95th percentile of retrieval time per answer."""
    generation_p50: float | None = unit("s")
    """Median generation time per answer (the batch holding it), beside its retrieval."""
    generation_p95: float | None = unit("s")
    """95th percentile of generation time per answer."""
    passages_in_prompt_mean: float | None = unit("passages")
    """Passages placed in the prompt, mean over the answers."""
    cached_query_vectors: int = unit("queries", 0)
    """Query embeddings taken from the cache (their embedding time as first measured)."""


# Key names of schema 1 (units in suffixes, retrieval flat) -> schema 2; also what strategies'
# `label_metrics` still return, so the runner parses their figures through the same table.
OLD_NAMES = {"latency_p50_s": "latency_p50", "latency_p95_s": "latency_p95", "latency_sample_n": "latency_sample",
             "batch_latency_p50_s": "batch_latency_p50", "batch_latency_p95_s": "batch_latency_p95",
             "compute_per_answer_s": "compute_per_answer", "answer_seconds": "answer_time",
             "throughput_answers_per_s": "throughput", "completion_tokens_per_s": "completion_token_rate"}
OLD_RETRIEVAL_NAMES = {"retrieval_k": "k", "retrieval_labeled": "labeled", "hit_at_k": "hit_at_k", "mrr": "mrr",
                       "retrieval_by_source": "by_source", "retrieval_by_answer": "by_answer",
                       "retrieval_p50_s": "p50", "retrieval_p95_s": "p95", "generation_p50_s": "generation_p50",
                       "generation_p95_s": "generation_p95", "passages_in_prompt_mean": "passages_in_prompt_mean",
                       "cached_query_vectors": "cached_query_vectors"}


@dataclass(frozen=True)
class StrategyMetrics:
    """One strategy's summary in a run: `<strategy>/metrics.json`. A strategy that did not run has only its
    name and status; every figure is then None."""

    strategy: str
    """The strategy's name in this run."""
    status: str
    """"ok", or "not run: <why>"."""
    scorer: str | None = None
    """The registered scorer of the task (exact_match, token_f1...)."""
    n: int = unit("items", 0)
    """Test items answered and scored."""
    score: float | None = unit("fraction")
    """Mean per-item score on the held-out test items."""
    ci_low: float | None = unit("fraction")
    """Lower end of the score's 95% confidence interval."""
    ci_high: float | None = unit("fraction")
    """Upper end of the score's 95% confidence interval."""
    ci_method: str | None = None
    """"wilson" (binary scorers) or "bootstrap" (continuous); None in runs made before it was recorded."""
    ci_degenerate: bool = False
    """The interval has zero width: a constant sample the bootstrap could not measure, not certainty."""
    small_sample: bool = False
    """Fewer scored items than harness.metrics.MIN_TEST_ITEMS."""
    binary: bool = False
    """The scorer gives 0 or 1 per item (McNemar for pairs) rather than a continuous score."""
    latency_kind: str | None = None
    """What latency_p50/p95 measured: "single request", or why not; None: batch wall time (old run)."""
    latency_p50: float | None = unit("s")
    """Median latency per answer, of the kind `latency_kind` names."""
    latency_p95: float | None = unit("s")
    """95th percentile latency per answer, of the kind `latency_kind` names."""
    latency_sample: int | None = unit("requests")
    """Requests answered one at a time to measure single-request latency."""
    latency_cached: int | None = unit("requests")
    """Of those, answers taken from the generation cache (their latency as first measured)."""
    batch_latency_p50: float | None = unit("s")
    """Median wall time of the scoring pass's batch holding an answer."""
    batch_latency_p95: float | None = unit("s")
    """95th percentile of that batch wall time."""
    compute_per_answer: float | None = unit("s")
    """Compute per answer in the scoring pass: its share of the batch (batch time / batch size), plus retrieval."""
    answer_time: float | None = unit("s")
    """Wall time of the whole scoring pass."""
    batch_size: int | None = unit("answers")
    """Answers generated together in the scoring pass."""
    throughput: float | None = unit("answers/s")
    """Answers per second of compute in the scoring pass, at `batch_size`."""
    prompt_tokens_mean: float | None = unit("tokens/answer")
    """Prompt tokens per answer, mean."""
    completion_tokens_mean: float | None = unit("tokens/answer")
    """Generated tokens per answer, mean."""
    completion_token_rate: float | None = unit("tokens/s")
    """Generated tokens per second of compute."""
    truncated_prompts: int = unit("answers", 0)
    """Prompts cut from the left to fit the model's context window."""
    cached_answers: int = unit("answers", 0)
    """Answers taken from the generation cache (text, tokens and latency as first measured)."""
    fit: FitRecord | None = None
    """What fitting cost and produced (None when the strategy did not run)."""
    retrieval: RetrievalMetrics | None = None
    """Retrieval quality and timing, for a strategy that retrieves passages; else None."""
    serving: dict[str, Any] | None = None
    """How the answers were served: {backend, quantization}; None in runs made before it was recorded."""
    scoring: dict[str, Any] | None = None
    """Figures a batch scorer gives for the whole set (a label scorer's macro-F1 and per-class figures, a judge's
    calibration); None for per-item scorers (harness.scoring.Scored.summary)."""
    seeds: SeedRecord | None = None
    """Per-seed scores of a trained arm answered by several training seeds; None with one seed."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Figures a strategy reported that this schema does not name (kept, shown nowhere)."""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def retrieves(self) -> bool:
        """Puts retrieved passages in its prompt: retrieval metrics, or an index among its builds."""
        return self.retrieval is not None or (self.fit is not None and self.fit.retrieves)

    @property
    def record(self) -> FitRecord:
        """The fit record; an empty one (base weights, nothing built) for a strategy that did not run."""
        return self.fit if self.fit is not None else FitRecord.from_dict(None)

    def to_json(self) -> dict[str, Any]:
        """metrics.json: the fields, with `schema_version` and the `units` map."""
        out = dataclasses.asdict(self)
        return {"schema_version": SCHEMA_VERSION, **out, "units": units_of(StrategyMetrics)}

    @classmethod
    def from_dict(cls, raw: Any, where: str = "metrics.json") -> StrategyMetrics:
        """Parse a metrics.json of any schema (see OLD_NAMES); a field of the wrong type is named in one line."""
        if not isinstance(raw, dict):
            raise HarnessError(f"{where}: damaged run file: not a JSON object")
        data = {OLD_NAMES.get(k, k): v for k, v in raw.items() if k not in ("schema_version", "units")}
        old_retrieval = {OLD_RETRIEVAL_NAMES[k]: data.pop(k) for k in list(data) if k in OLD_RETRIEVAL_NAMES}
        if "retrieval" not in data and "k" in old_retrieval:
            data["retrieval"] = old_retrieval
        known = {f.name for f in dataclasses.fields(cls)}
        extra = {**(data.pop("extra", None) or {}), **{k: v for k, v in data.items() if k not in known}}
        data = {k: v for k, v in data.items() if k in known}
        data.setdefault("strategy", "?")
        data.setdefault("status", "not run: no status recorded")
        for name in ("strategy", "status"):
            _check(where, name, data[name], str)
        if data["status"] == "ok":
            for name in ("n", "score", "ci_low", "ci_high", "latency_p50", "latency_p95", "compute_per_answer",
                         "prompt_tokens_mean", "completion_tokens_mean"):
                _check(where, name, data.get(name), (int, float))
            data = _infer_old_flags(data)
            data["fit"] = _parse(where, "fit", lambda: FitRecord.from_dict(data.get("fit")))
        else:
            data.pop("fit", None)
        if data.get("retrieval") is not None:
            data["retrieval"] = _parse(where, "retrieval", lambda: RetrievalMetrics(**data["retrieval"]))
        if data.get("seeds") is not None:
            data["seeds"] = _parse(where, "seeds", lambda: SeedRecord(**data["seeds"]))
        return cls(**data, extra=extra)


NESTED: dict[tuple[str, str], type] = {("StrategyMetrics", "retrieval"): RetrievalMetrics,
                                       ("StrategyMetrics", "fit"): FitRecord,
                                       ("StrategyMetrics", "seeds"): SeedRecord, ("FitRecord", "one_time"): Build,
                                       ("FitRecord", "weights"): Weights}
"""Nested records whose units join their parent's `units` map."""


def _infer_old_flags(data: dict[str, Any]) -> dict[str, Any]:
    """Flags runs made before they were recorded carry implicitly: a zero-width interval, a small test set."""
    from harness.metrics import MIN_TEST_ITEMS

    data.setdefault("ci_degenerate", data["ci_low"] == data["ci_high"])
    data.setdefault("small_sample", data["n"] < MIN_TEST_ITEMS)
    return data


def _check(where: str, name: str, value: Any, kind: type | tuple[type, ...]) -> None:
    if not isinstance(value, kind) or isinstance(value, bool):
        expected = kind.__name__ if isinstance(kind, type) else "a number"
        raise HarnessError(f"{where}: damaged run file: field '{name}' should be {expected}, got {value!r}"[:300])


def _parse(where: str, name: str, build: Any) -> Any:
    try:
        return build()
    except (TypeError, ValueError, AttributeError) as exc:
        raise HarnessError(f"{where}: damaged run file: field '{name}': {exc}"[:300]) from None
