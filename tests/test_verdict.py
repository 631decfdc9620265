"""The verdict rule's edge cases, on fixture run directories (no model needed)."""

import pytest

from harness import verdict
from harness.caveats import caveats
from harness.config import DOCS_CHANGE
from harness.cost import break_even, strategy_cost
from harness.metrics import score_ci
from harness.records import Build, FitRecord, Weights
from harness.report import analyze, matrix
from harness.report_record import Cost
from harness.run_schema import StrategyMetrics
from harness.stats import compare_strategies, min_detectable_drop
from tests.run_fixture import make_run

N = 120


def scores(correct: int) -> list[float]:
    return [1.0] * correct + [0.0] * (N - correct)


def ran(name: str, fit: dict | FitRecord | None = None, **fields) -> StrategyMetrics:
    """A strategy that ran, with only the figures a test needs; `fit` as metrics.json stores it, or typed."""
    record = fit if isinstance(fit, FitRecord) else FitRecord.from_dict(fit)
    return StrategyMetrics(name, "ok", fit=record, **fields)


def test_statistical_tie_goes_to_the_cheaper_strategy(tmp_path):
    # finetune is 2 items better: inside the noise; it also cost an hour of training.
    run = make_run(tmp_path, {"prompt": scores(80), "rag": scores(60), "finetune": scores(82)},
                   fit_seconds={"finetune": 3600.0})
    v = analyze(run).verdict
    assert v["choice"] == "prompt"
    assert set(v["candidates"]) == {"finetune", "prompt"}
    assert any("statistically tied" in r for r in v["reasons"])


def test_significant_winner_is_chosen_even_if_costlier(tmp_path):
    run = make_run(tmp_path, {"prompt": scores(40), "finetune": scores(110)}, fit_seconds={"finetune": 3600.0})
    v = analyze(run).verdict
    assert v["choice"] == "finetune" and v["candidates"] == ["finetune"]
    assert any("beats prompt" in r for r in v["reasons"])


def test_significant_forgetting_excludes_the_finetune(tmp_path):
    bench = {"by_strategy": {"prompt": "base", "finetune": "finetune"},
             "weights": {"base": {"mmlu": {"score": 0.3, "stderr": 0.02, "n": 100}},
                         "finetune": {"mmlu": {"score": 0.2, "stderr": 0.02, "n": 100}}},
             "forgetting": {"mmlu": {"delta": -0.1, "p_value": 0.001, "significant_drop": True, "n": 100}}}
    run = make_run(tmp_path, {"prompt": scores(40), "finetune": scores(110)}, benchmarks=bench)
    a = analyze(run)
    assert a.verdict["choice"] == "prompt"
    assert "finetune" in a.verdict["excluded"]
    cells = matrix(a).set_index("strategy")
    assert "Δ -0.100" in cells.loc["finetune", "MMLU (Δ vs base)"]
    assert "significant drop" in cells.loc["finetune", "MMLU (Δ vs base)"]


def test_missing_strategies_are_reported_not_invented(tmp_path):
    run = make_run(tmp_path, {"prompt": scores(50)}, not_run={"rag": "no documents", "finetune": "crashed"})
    a = analyze(run)
    v = a.verdict
    assert v["choice"] is None  # one strategy alone was compared with nothing
    assert "rag: not run: no documents." in v["reasons"]
    assert "Only prompt ran (0.417 on 120 items); nothing was compared, so there is no recommendation." in v["reasons"]
    assert a.pairs == []
    assert any("second strategy" in w for w in a.what_would_change)


def test_nothing_ran_means_no_recommendation(tmp_path):
    run = make_run(tmp_path, {"prompt": scores(50)}, name="x")
    (run / "prompt" / "metrics.json").write_text('{"status": "not run: interrupted"}')
    assert analyze(run).verdict["choice"] is None


def test_cost_model_and_break_even():
    cost_cfg = {"gpu_usd_per_hour": 2.0, "cpu_usd_per_hour": 0.36, "hosted_usd_per_1k_tokens": 0.001,
                "expected_answers": 1000}
    base = ran("rag", {"seconds": 0.0, "device": "cpu"}, compute_per_answer=1.0, prompt_tokens_mean=900.0,
               completion_tokens_mean=100.0)
    tuned = ran("finetune", {"seconds": 1800.0, "device": "cuda"}, compute_per_answer=0.5, prompt_tokens_mean=100.0,
                completion_tokens_mean=100.0)
    rag = strategy_cost(base, cost_cfg, "cpu")
    ft = strategy_cost(tuned, cost_cfg, "cpu")
    assert rag.per_1k_answers == 0.1  # 1000 s at 0.36 USD/h
    assert ft.one_time == 1.0  # half a GPU hour at 2 USD/h
    assert rag.hosted_per_1k_answers == 1.0  # 1000 tokens per answer at 0.001 USD per 1k tokens
    # saves 0.05 USD per 1k answers -> 1 USD repaid after 20,000 answers
    assert break_even({"rag": rag, "finetune": ft}, ["finetune"]) == {"finetune": {"rag": 20001}}
    assert break_even({"rag": ft, "finetune": rag}, ["finetune"]) == {"finetune": {"rag": 0}}
    assert break_even({"rag": rag}, ["finetune"]) == {}


def test_one_time_cost_sums_each_build_at_its_machine_price():
    """A typed fit record: the index built on the CPU, the adapter trained on a GPU, both reused in this run."""
    cost_cfg = {"gpu_usd_per_hour": 2.0, "cpu_usd_per_hour": 0.36, "expected_answers": 1000}
    both = [{"what": "index", "seconds": 3600.0, "device": "cpu", "content_id": "idx", "reused": True},
            {"what": "adapter", "seconds": 1800.0, "device": "cuda", "content_id": "a1", "reused": True}]
    m = ran("x", {"seconds": 2.0, "device": "cuda", "details": {"train_seconds": 99.0}, "one_time": both,
                  "weights": {"kind": "adapter", "adapter_dir": "x/adapter", "content_id": "a1"}, "complexity": 3},
            compute_per_answer=0.0, prompt_tokens_mean=1.0, completion_tokens_mean=1.0)
    c = strategy_cost(m, cost_cfg, "cpu")
    # 0.36 (an hour of CPU) + 1.00 (half an hour of GPU); this run's 2 s fit and the details are not the cost.
    assert c.one_time_compute == 5400.0 and c.one_time == pytest.approx(1.36)
    assert c.one_time_devices == ("cpu", "cuda")


def test_two_item_run_with_one_strategy_recommends_nothing():
    m = {"prompt": ran("prompt", score=0.5, n=2, **score_ci([1.0, 0.0], binary=True))}
    v = verdict.decide(m, [], {}, {}, 1000)
    assert v["choice"] is None and v["small_sample"]
    assert v["reasons"] == ["Only prompt ran (0.500 on 2 items); nothing was compared, so there is no recommendation."]


def test_small_test_set_tie_is_no_recommendation(tmp_path):
    run = make_run(tmp_path, {"prompt": [1.0] * 5 + [0.0] * 5, "rag": [1.0] * 6 + [0.0] * 4})
    v = analyze(run).verdict
    assert v["choice"] is None and set(v["candidates"]) == {"prompt", "rag"}
    assert any("too small to tell" in r and "fewer than 30" in r for r in v["reasons"])


def test_small_test_set_clear_winner_is_recommended_with_a_warning(tmp_path):
    # 10 items only rag gets right, none the other way: McNemar exact p = 0.002.
    run = make_run(tmp_path, {"prompt": [1.0] * 2 + [0.0] * 18, "rag": [1.0] * 12 + [0.0] * 8})
    v = analyze(run).verdict
    assert v["choice"] == "rag" and v["small_sample"]
    assert any("only 20 items" in r and "confirm on a larger test set" in r for r in v["reasons"])


def test_constant_scores_on_a_small_sample_recommend_nothing():
    # Six items, each 0.6 vs 0.2: every sign agrees (p = 2/64), but a constant sample shows no spread at all.
    ids = [f"i{k}" for k in range(6)]
    values = {"prompt": [0.2] * 6, "rag": [0.6] * 6}
    pairs = [p.as_dict() for p in compare_strategies({n: dict(zip(ids, v)) for n, v in values.items()}, False)]
    assert pairs[0]["significant"]  # the paired test alone would crown rag
    metrics = {n: ran(n, score=v[0], n=6, **score_ci(v, binary=False)) for n, v in values.items()}
    costs = {n: Cost(total_at_volume=1.0) for n in values}
    v = verdict.decide(metrics, pairs, costs, {}, 1000)
    assert v["choice"] is None
    assert any("zero-width interval" in r and "not certainty" in r for r in v["reasons"])


TUNED = {"prompt": ran("prompt", score=0.6, n=200),
         "finetune": ran("finetune", {"details": {"adapter_dir": "finetune/adapter"}}, score=0.62, n=200)}


def bench_result(correct: int, n: int, metric: str = "acc") -> dict:
    return {"status": "ok", "skipped": None, "metric": metric, "score": correct / n, "n": n,
            "items": {f"q{k}": int(k < correct) for k in range(n)}}


def test_caveat_forgetting_not_measured_without_benchmarks():
    seeds, sentence = caveats(TUNED, {}, {"scored": 200})
    assert seeds.startswith("finetune rests on one training seed")
    assert sentence.startswith("Forgetting was not measured") and "finetune" in sentence
    (base_only,) = caveats({"prompt": TUNED["prompt"]}, {}, {"scored": 200})
    assert "forgetting was not measured" in base_only and "none could have forgotten" in base_only
    no_weights = {"weights": {"base": {"mmlu": bench_result(60, 100)}}, "by_strategy": {"prompt": "base"}}
    assert "Forgetting was not measured for finetune: its weights have no MMLU/HumanEval result." in (
        caveats(TUNED, no_weights))


def test_caveats_at_chance_floor_and_skipped():
    skipped = {"status": "skipped", "skipped": "scoring HumanEval runs model-written code; allow it"}
    bench = {"weights": {"base": {"mmlu": bench_result(26, 100), "humaneval": bench_result(0, 10, "pass@1")},
                         "finetune": {"mmlu": bench_result(25, 100), "humaneval": skipped}},
             "by_strategy": {"prompt": "base", "finetune": "finetune"}, "forgetting": {"humaneval": skipped}}
    out = caveats(TUNED, bench, {"scored": 200})
    assert ("MMLU 0.26 vs chance 0.25 on 100 items: the base model is not above chance (one-sided binomial "
            "p = 0.45), so forgetting cannot be detected on MMLU.") in out
    assert "HumanEval pass@1 0/10: the base model solves none, so a drop cannot be detected on HumanEval." in out
    assert "Forgetting on HumanEval was not checked: scoring HumanEval runs model-written code; allow it." in out
    assert len(out) == 4 and out[0].startswith("finetune rests on one training seed")


def test_caveat_smallest_detectable_drop():
    bench = {"weights": {"base": {"mmlu": bench_result(45, 100)}, "finetune": {"mmlu": bench_result(44, 100)}},
             "by_strategy": {"prompt": "base", "finetune": "finetune"}}
    _, sentence = caveats(TUNED, bench, {"scored": 200})
    drop = min_detectable_drop(0.45, 100, 0.05, 0.8)
    assert drop == pytest.approx(0.188, abs=0.001)
    assert sentence.startswith(f"MMLU on 100 items (base 0.45) can only detect a drop of {drop:.2f} or more")
    # 0.35 on 100 items: the detectable drop (about 0.18) is larger than the 0.10 above chance.
    bench["weights"]["base"]["mmlu"] = bench_result(35, 100)
    _, sentence = caveats(TUNED, bench)
    assert "could not detect even a fall to chance" in sentence


def test_caveat_small_test_set_and_constant_sample():
    m = {"prompt": ran("prompt", score=0.0, n=2, **score_ci([0.0, 0.0], binary=False))}
    out = caveats(m, {}, {"scored": 2})
    assert out[0].startswith("The test set has only 2 scored items (fewer than 30): at a 50% score the 95% "
                             "interval runs from 0.09 to 0.91")
    assert "zero width because the sample is constant" in out[1]


@pytest.mark.parametrize("change", DOCS_CHANGE)
def test_every_docs_change_value_has_a_reasoned_criterion(change):
    favours, reason = verdict.docs_change_row(change, retrain_usd=2.0, reindex_s=30.0)
    assert "not a known value" not in reason and change in reason
    assert favours in ("retrieval", "trained weights or retrieval", "unknown")
    assert verdict.docs_change_row("hourly", None, None)[1].startswith("'hourly' is not a known value")


def test_monthly_docs_change_in_criteria_and_what_would_change():
    # Old-run fit records: the index build and the training are read from their details.
    metrics = {"rag": ran("rag", {"seconds": 0.5, "details": {"build_s": 42.0}}, score=0.7, latency_p50=1.0),
               "finetune": ran("finetune", {"seconds": 3600.0, "details": {"adapter_dir": "finetune/adapter"}},
                               score=0.8, latency_p50=0.5)}
    costs = {"rag": Cost(total_at_volume=2.0, one_time=0.0), "finetune": Cost(total_at_volume=3.0, one_time=2.5)}
    rows = verdict.criteria(metrics, [], costs, {"docs_change": "monthly"}, 1000, {}, 1000)
    row = rows[0]
    assert row["favours"] == "rag"  # the strategies of this run that retrieve
    assert "RAG re-indexes in 42 s" in row["reason"] and "monthly retrain is feasible" in row["reason"]
    assert "$30.00 a year" in row["reason"]  # 12 trainings at 2.50 USD
    changes = verdict.what_would_change({"choice": "finetune", "candidates": ["finetune"]}, metrics,
                                        {"docs_change": "monthly"}, 1000, {}, 1000)
    assert any("retrain each month" in c for c in changes)


def four_arms(names=("prompt", "rag", "finetune", "rag_finetune"), index_s=0.0, train_s=0.0,
              details: dict | None = None) -> dict[str, FitRecord]:
    """Typed fit records of the four arms: base, base + index, adapter, adapter + the same index."""
    index, training = Build("index", index_s, "cpu", "idx/flat"), Build("adapter", train_s, "cpu", "a1b2c3")
    records = [FitRecord(complexity=0), FitRecord(one_time=(index,), complexity=1),
               FitRecord(details=details or {}, weights=Weights("adapter", f"{names[2]}/adapter", "a1b2c3"),
                         one_time=(training,), complexity=2),
               FitRecord(details=details or {}, weights=Weights("adapter", f"{names[3]}/adapter", "a1b2c3"),
                         one_time=(index, training), complexity=3)]
    return dict(zip(names, records))


def test_a_tie_on_cost_goes_to_the_lowest_complexity_rank_whatever_the_names(tmp_path):
    # Arbitrary names: the rule reads the fit records' complexity, not "rag".
    names = ("w", "x", "y", "z")
    run = make_run(tmp_path, dict(zip(names, [scores(40), scores(80), scores(42), scores(81)])),
                   fits=four_arms(names))
    v = analyze(run).verdict
    assert set(v["candidates"]) == {"x", "z"} and v["choice"] == "x"  # equal costs: the simpler one
    assert any(r.startswith("y and z answer with the same adapter (adapter:a1b2c3), trained once and shared")
               for r in v["reasons"])


def test_the_fourth_arm_in_costs_criteria_and_what_would_change(tmp_path):
    run = make_run(tmp_path, {"prompt": scores(40), "rag": scores(100), "finetune": scores(42),
                              "rag_finetune": scores(105)}, fits=four_arms(index_s=60.0, train_s=3600.0))
    a = analyze(run)
    assert a.verdict["choice"] == "rag"  # tied with rag_finetune, without its hour of training
    assert set(a.break_even) == {"finetune", "rag_finetune"}  # every strategy with trained weights
    assert set(a.break_even["rag_finetune"]) == {"prompt", "rag", "finetune"}
    rows = {r["criterion"]: r for r in a.criteria}
    knowledge = rows["Knowledge requirements"]
    assert knowledge["favours"] == "rag or rag_finetune"  # retrieval helps on the base weights and on the adapter
    assert "rag beats prompt" in knowledge["reason"] and "rag_finetune beats finetune" in knowledge["reason"]
    assert rows["Training data available"]["favours"] == "finetune or rag_finetune"  # 1,000 labeled examples
    one_time = matrix(a).set_index("strategy").loc["rag_finetune", "one-time cost (USD)"]
    assert "index shared with rag" in one_time and "adapter shared with finetune" in one_time
    assert a.costs["rag_finetune"].one_time_compute == 3660.0  # index + training, each counted

    metrics = {n: ran(n, f) for n, f in four_arms().items()}
    weekly = verdict.what_would_change({"choice": "rag_finetune", "candidates": ["rag_finetune"]}, metrics,
                                       {"docs_change": "weekly"}, 1000, {}, 1000)
    assert any("rag_finetune re-indexes to keep its passages current, but its adapter" in c for c in weekly)
    assert not any("RAG re-indexes instead" in c for c in weekly)  # that is said of a fine-tune without retrieval
    few = verdict.what_would_change({"choice": "rag", "candidates": ["rag"]}, metrics, {}, 100, {}, 1000)
    assert any("Only 100 training examples" in c for c in few)


def test_caveat_untuned_baseline_when_the_search_is_off():
    """A trained arm against baselines whose dev search was switched off: said in words; with the search on (or in
    runs made before it existed, whose config gets the default), nothing."""
    off = caveats(TUNED, {}, {"scored": 200}, config={"prompt": {"search": False}, "rag": {"search": True}})
    assert any(s.startswith("prompt.search is off: prompt answered with the settings as written while finetune")
               for s in off)
    assert not any("search" in s for s in caveats(TUNED, {}, {"scored": 200},
                                                  config={"prompt": {"search": True}, "rag": {"search": True}}))
    assert not any("search" in s for s in caveats({"prompt": TUNED["prompt"]}, {}, {"scored": 200},
                                                  config={"prompt": {"search": False}}))
