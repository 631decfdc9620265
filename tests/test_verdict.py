"""The verdict rule's edge cases, on fixture run directories (no model needed)."""

from harness.cost import break_even, strategy_cost
from harness.report import analyze, matrix
from tests.run_fixture import make_run

N = 120


def scores(correct: int) -> list[float]:
    return [1.0] * correct + [0.0] * (N - correct)


def test_statistical_tie_goes_to_the_cheaper_strategy(tmp_path):
    # finetune is 2 items better: inside the noise; it also cost an hour of training.
    run = make_run(tmp_path, {"prompt": scores(80), "rag": scores(60), "finetune": scores(82)},
                   fit_seconds={"finetune": 3600.0})
    v = analyze(run)["verdict"]
    assert v["choice"] == "prompt"
    assert set(v["candidates"]) == {"finetune", "prompt"}
    assert any("statistically tied" in r for r in v["reasons"])


def test_significant_winner_is_chosen_even_if_costlier(tmp_path):
    run = make_run(tmp_path, {"prompt": scores(40), "finetune": scores(110)}, fit_seconds={"finetune": 3600.0})
    v = analyze(run)["verdict"]
    assert v["choice"] == "finetune" and v["candidates"] == ["finetune"]
    assert any("beats prompt" in r for r in v["reasons"])


def test_significant_forgetting_excludes_the_finetune(tmp_path):
    bench = {"by_strategy": {"prompt": "base", "finetune": "finetune"},
             "weights": {"base": {"mmlu": {"score": 0.3, "stderr": 0.02, "n": 100}},
                         "finetune": {"mmlu": {"score": 0.2, "stderr": 0.02, "n": 100}}},
             "forgetting": {"mmlu": {"delta": -0.1, "p_value": 0.001, "significant_drop": True, "n": 100}}}
    run = make_run(tmp_path, {"prompt": scores(40), "finetune": scores(110)}, benchmarks=bench)
    a = analyze(run)
    assert a["verdict"]["choice"] == "prompt"
    assert "finetune" in a["verdict"]["excluded"]
    cells = matrix(a).set_index("strategy")
    assert "Δ -0.100" in cells.loc["finetune", "MMLU (Δ vs base)"]
    assert "significant drop" in cells.loc["finetune", "MMLU (Δ vs base)"]


def test_missing_strategies_are_reported_not_invented(tmp_path):
    run = make_run(tmp_path, {"prompt": scores(50)}, not_run={"rag": "no documents", "finetune": "crashed"})
    a = analyze(run)
    v = a["verdict"]
    assert v["choice"] == "prompt"
    assert "rag: not run: no documents." in v["reasons"]
    assert a["pairs"] == []


def test_nothing_ran_means_no_recommendation(tmp_path):
    run = make_run(tmp_path, {"prompt": scores(50)}, name="x")
    (run / "prompt" / "metrics.json").write_text('{"status": "not run: interrupted"}')
    assert analyze(run)["verdict"]["choice"] is None


def test_cost_model_and_break_even():
    cost_cfg = {"gpu_usd_per_hour": 2.0, "cpu_usd_per_hour": 0.36, "hosted_usd_per_1k_tokens": 0.001,
                "expected_answers": 1000}
    base = {"compute_per_answer_s": 1.0, "prompt_tokens_mean": 900.0, "completion_tokens_mean": 100.0,
            "fit": {"seconds": 0.0, "device": "cpu"}}
    tuned = {"compute_per_answer_s": 0.5, "prompt_tokens_mean": 100.0, "completion_tokens_mean": 100.0,
             "fit": {"seconds": 1800.0, "device": "cuda"}}
    rag = strategy_cost(base, cost_cfg, "cpu")
    ft = strategy_cost(tuned, cost_cfg, "cpu")
    assert rag["per_1k_answers_usd"] == 0.1  # 1000 s at 0.36 USD/h
    assert ft["one_time_usd"] == 1.0  # half a GPU hour at 2 USD/h
    assert rag["hosted_per_1k_answers_usd"] == 1.0  # 1000 tokens per answer at 0.001 USD per 1k tokens
    # saves 0.05 USD per 1k answers -> 1 USD repaid after 20,000 answers
    assert break_even({"rag": rag, "finetune": ft}) == {"rag": 20001}
    assert break_even({"rag": ft, "finetune": rag}) == {"rag": 0}
