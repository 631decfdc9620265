"""The report's content, built once: a title, an intro and a list of sections (heading + Markdown + plots).

report.md and report.html are two renderings of the same `Report` (harness/report_render.py), so a
section added here appears in both. Sections, in order: Warnings (when any), Verdict, Decision matrix,
Plots, Paired comparisons, Served (exported) models (when the run has exports), Criteria, Dev tuning (how
each arm used dev: its search table and choice), Retrieval
(strategies with retrieval metrics), Fine-tune (one per trained adapter with a training record, naming every
strategy that answers with it), Judge (strategies scored by a judge model), Classification (label
scorer: per-class figures, confusion plots), Strategy details (other fit facts), Wall time (each phase
of the run, from timings.json), Setup. Which section shows a strategy is decided by its facts, never its name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from harness.report_format import BOUNDED_SCORERS, bullets, count, duration, fact_line, latency_label, md_table, usd
from harness.report_judge import HEADING as JUDGE_HEADING
from harness.report_judge import judge_body
from harness.report_label import label_body
from harness.report_matrix import latency_kinds, matrix, pairs_table, verdict_line
from harness.report_plots import Plot, figures, loss_plot_owners
from harness.report_record import RunReport
from harness.report_search import dev_tuning_body, model_not_docs
from harness.report_served import HEADING, served_body
from harness.run_schema import RetrievalMetrics, StrategyMetrics
from harness.seeds import seeds_body
from harness.timings import wall_time_body
from harness.training.summary import body_lines

CI_METHODS = {"wilson": "Wilson score interval", "bootstrap": "seeded bootstrap"}
# Fit details that are lists, paths into a cache, or shown elsewhere in the report.
DETAIL_SKIP = {"shot_ids", "cache_dir", "skipped_files", "retrieval_by_source", "retrieval_by_answer",
               "system_prompt"}  # the system prompt: long, and the Dev tuning section names the choice


@dataclass(frozen=True)
class Section:
    heading: str
    """The `## ` heading, the same text in report.md and report.html."""
    body: str
    """CommonMark with pipe tables."""
    plots: tuple[str, ...] = ()
    """Plot file names shown after the body (keys of Report.plots)."""
    css_class: str = ""
    """How report.html marks the section out ('verdict', 'warn')."""


@dataclass
class Report:
    title: str
    intro: str
    sections: list[Section]
    plots: dict[str, Plot] = field(default_factory=dict)


def _verdict(a: RunReport) -> Section:
    v = a.verdict
    parts = [f"**{verdict_line(v)}**", bullets(v.get("reasons") or ["No reasons were recorded."])]
    if v.get("caveats"):
        parts += ["Caveats:", bullets(v["caveats"])]
    if a.what_would_change:
        parts += ["What would change it:", bullets(a.what_would_change)]
    if v.get("rule"):
        parts.append(f"Rule: {v['rule']}")
    return Section("Verdict", "\n\n".join(parts), css_class="verdict")


def _throughput_definition(a: RunReport, batch: int) -> str:
    backends = {(m.serving or {}).get("backend", "transformers") for m in a.strategies.values() if m.ok}
    if backends <= {"transformers", "unsloth"}:
        return f"throughput is answers per second at the batch size used (configured {batch})."
    return (f"throughput is answers per second in the scoring pass: on transformers at the batch size used "
            f"(configured {batch}), on llama.cpp one prompt at a time per instance, on a server with "
            "`model.concurrency` requests in flight.")


def _latency_definition(a: RunReport) -> str:
    kinds = latency_kinds(a)
    batch = a.config["generation"]["batch_size"]
    if kinds == {"single request"}:
        return ("Latency is single-request latency: seconds to answer one request on its own (p50 / p95 over the "
                f"test items); {_throughput_definition(a, batch)}")
    if kinds == {None}:
        return ("Latency here is batch wall time per answer (old run): the wall time of the generation batch "
                f"holding the answer (batch size {batch}), not the latency one user would see.")
    return "Latency differs in kind between strategies; each cell names what it measured."


def _matrix_caption(a: RunReport) -> str:
    cfg, scorer = a.config, a.scorer
    bounded = "0 to 1, higher is better" if scorer in BOUNDED_SCORERS else "higher is better"
    methods = {CI_METHODS.get(m.ci_method, m.ci_method) for m in a.strategies.values() if m.ci_method}
    ci = f"95% confidence intervals ({', '.join(sorted(methods)) if methods else 'seeded bootstrap'})"
    searched = any(b.what == "search" for m in a.strategies.values() if m.ok for b in m.record.one_time)
    building = "building the index, tuning on dev or training" if searched else "building the index or training"
    prices = (f"Costs use {usd(cfg['cost']['cpu_usd_per_hour'])}/h (CPU) and {usd(cfg['cost']['gpu_usd_per_hour'])}/h "
              f"(GPU): one-time cost is {building}, with its machine time; serving cost is the "
              "compute seconds per answer at those prices")
    if cfg["cost"].get("hosted_usd_per_1k_tokens") is not None:
        prices += f"; a hosted API at {usd(cfg['cost']['hosted_usd_per_1k_tokens'])} per 1,000 tokens"
    return (f"Scorer `{scorer}` ({bounded}) on {count(a.split.get('scored'))} held-out items; {ci}. "
            f"n is the number of test items a strategy answered (— when it did not run). "
            f"{_latency_definition(a)} {prices}. MMLU and HumanEval: score ± standard error on the weights the "
            "strategy answers with; Δ is the change against the base weights and its test for a significant drop.")


def _matrix(a: RunReport) -> Section:
    parts = [_matrix_caption(a), md_table(matrix(a))]
    cached = {n: m.cached_answers for n, m in a.strategies.items() if m.cached_answers}
    if cached:
        parts.append("Answers reused from the generation cache (text, tokens and latency as first measured): "
                     + ", ".join(f"{n} {c}" for n, c in cached.items()) + ". `--no-cache` measures afresh.")
    return Section("Decision matrix", "\n\n".join(parts))


def _plots(a: RunReport, plots: dict[str, Plot]) -> Section | None:
    shown = tuple(f for f in ("plot_score.png", "plot_score_vs_cost.png", "plot_latency.png") if f in plots)
    if not shown:
        return None
    kinds = latency_kinds(a)
    what = latency_label(next(iter(kinds))) if len(kinds) == 1 else "latency of the kind named in the matrix"
    axis = "on a 0 to 1 axis " if a.scorer in BOUNDED_SCORERS else ""
    return Section("Plots", f"Scores {axis}with 95% confidence intervals; latency is {what}, in seconds; serving "
                   "cost in USD per 1,000 answers.", shown)


def _pairs(a: RunReport) -> Section:
    if not a.pairs:
        return Section("Paired comparisons", "Fewer than two strategies ran: nothing to compare.")
    return Section("Paired comparisons", "Each pair on the test items both answered; the difference is the first "
                   "minus the second, with its 95% CI; p-values Holm-corrected across pairs.\n\n"
                   + md_table(pairs_table(a.pairs)))


def _served(a: RunReport) -> Section | None:
    return Section(HEADING, served_body(a.served, a.strategies, a.scorer)) if a.served else None


def _retrieval_lines(r: RetrievalMetrics) -> list[str]:
    k, src, ans = r.k, r.by_source, r.by_answer
    lines = []
    if src.get("n"):
        lines.append(f"Right source document in the top {k}: hit@{k} {src['hit_at_k']:.3f}, MRR {src['mrr']:.3f} "
                     f"(n={count(src['n'])})")
    if ans.get("n"):
        lines.append(f"Reference answer verbatim in a top-{k} chunk: hit@{k} {ans['hit_at_k']:.3f}, "
                     f"MRR {ans['mrr']:.3f} (n={count(ans['n'])})")
    if not lines:
        lines.append("No test item names its source or has its answer verbatim in a chunk, so hit@k is not measured")
    if r.p50 is not None:
        lines.append(f"Latency split per answer: retrieval p50 {duration(r.p50)} / p95 {duration(r.p95)}; "
                     f"generation p50 {duration(r.generation_p50)} / p95 {duration(r.generation_p95)}; "
                     f"{r.passages_in_prompt_mean or 0:.1f} passages in the prompt on average")
    if r.cached_query_vectors:
        lines.append(f"{r.cached_query_vectors} query embeddings from the cache (their embedding time as first "
                     "measured)")
    return lines


def _fit_facts(m: StrategyMetrics, index_only: bool = False) -> list[str]:
    """Scalar fit details as lines; `index_only`: the index's, kept apart when the fit trained too."""
    fit = m.record.details
    if index_only and "retrieval_index" in fit:
        fit = fit["retrieval_index"]
    lines = [fact_line(k, v) for k, v in fit.items() if isinstance(v, (int, float, str)) and k not in DETAIL_SKIP]
    if fit.get("skipped_files"):
        lines.append(f"- skipped files: {', '.join(str(s) for s in fit['skipped_files'])}")
    return lines


def _strategy_sections(a: RunReport, plots: dict[str, Plot]) -> list[Section]:
    """Retrieval for strategies with retrieval metrics, Fine-tune per trained adapter with a training record
    (strategies sharing it share the section), other fit facts last."""
    ok = a.ran
    retrieval, other = [], []
    trained: dict[str, list[str]] = {}
    for name, m in ok.items():
        if m.retrieval is not None and m.retrieval.k:
            facts = _fit_facts(m, index_only=True)
            lines = _retrieval_lines(m.retrieval) + [line for line in [model_not_docs(
                m.retrieval.hit_at_k, m.score, m.retrieval.k, "the test items")] if line]
            retrieval.append(f"### {name}\n\n" + bullets(lines)
                             + ("\n\nIndex:\n\n" + "\n".join(facts) if facts else ""))
        if m.record.details.get("engine"):
            trained.setdefault(m.record.weights.key, []).append(name)
        elif not (m.retrieval is not None and m.retrieval.k) and _fit_facts(m):
            other.append(f"### {name}\n\n" + "\n".join(_fit_facts(m)))
    out = [Section("Retrieval", "\n\n".join(retrieval))] if retrieval else []
    owners = loss_plot_owners(ok)
    for names in trained.values():
        heading = "Fine-tune" if len(trained) == 1 and len(names) == 1 else f"Fine-tune: {' and '.join(names)}"
        shared = (f"The same adapter answers for {' and '.join(names)}: trained once, the figures below are that "
                  "training's.\n\n" if len(names) > 1 else "")
        # The training summary reads the metrics.json mapping, so old runs re-report through it too.
        out.append(Section(heading, shared + "\n".join(body_lines(ok[names[0]].to_json())),
                           tuple(f"plot_loss_{n}.png" for n in names if owners.get(n) == n
                                 and f"plot_loss_{n}.png" in plots)))
    if judged := judge_body(ok):
        out.append(Section(JUDGE_HEADING, judged))
    if labelled := label_body(ok, plots):  # label scorer: per-class figures and a confusion plot per strategy
        out.append(Section("Classification", *labelled))
    return out + ([Section("Strategy details", "\n\n".join(other))] if other else [])


def _setup(a: RunReport) -> Section:
    cfg, env = a.config, a.environment
    model, gen, split = env.get("model", {}), cfg["generation"], a.split
    packages = ", ".join(f"{k} {v}" for k, v in (env.get("packages") or {}).items() if v)
    lines = [
        f"Model `{cfg['model']['name']}` on {model.get('device', '?')} ({model.get('dtype', '?')}), greedy, at most "
        f"{gen['max_new_tokens']} new tokens, stop {gen['stop']!r}, batch size {gen['batch_size']}; "
        f"{cfg['prompt']['k_shot']}-shot prompt",
        f"Split: {split.get('train', '?')} train / {split.get('dev', '?')} dev / {split.get('test', '?')} test "
        "examples",
        f"Contamination: {len(a.contamination.get('exact_overlap', []))} exact prompt overlaps, "
        f"{len(a.contamination.get('near_duplicates', []))} near-duplicates",
        f"Machine: {env.get('cpu_count', '?')} CPU cores, {env.get('ram_gib', '?')} GiB RAM, "
        f"{env.get('torch_threads', '?')} torch threads, GPU: {env.get('gpu') or 'none'}",
        f"Environment: Python {env.get('python', '?')}" + (f"; {packages}" if packages else "")
        + (f"; harness commit `{env['git_commit'][:12]}`" if env.get("git_commit") else ""),
        f"Run directory: `{a.run_dir}`",
    ]
    return Section("Setup", bullets(lines))


def build_report(a: RunReport) -> Report:
    """The report of one analysis (harness.report.analyze), with its figures drawn."""
    plots = figures(a)
    sections = [Section("Warnings", bullets(a.warnings), css_class="warn")] if a.warnings else []
    sections += [_verdict(a), _matrix(a), _plots(a, plots), _pairs(a), _served(a),
                 Section("Criteria", md_table(pd.DataFrame(a.criteria)))]
    tuning = dev_tuning_body(a.strategies, a.split)
    sections += [Section("Dev tuning", tuning)] if tuning else []
    seeded = seeds_body(a.strategies)
    sections += [Section("Training seeds", seeded)] if seeded else []
    timed = wall_time_body(a.timings, sum(m.cached_answers or 0 for m in a.ran.values()))
    sections += _strategy_sections(a, plots) + ([Section("Wall time", timed)] if timed else []) + [_setup(a)]
    return Report(f"{a.task}: {' vs '.join(a.strategies)}", a.description,
                  [s for s in sections if s is not None], plots)
