"""General benchmarks (MMLU, HumanEval) through lm-eval: did the fine-tune break what the model knew?

    from harness.benchmarks import run_general_benchmarks, forgetting
    base = run_general_benchmarks(model_dir, None, cfg.benchmarks)
    tuned = run_general_benchmarks(model_dir, adapter_dir, cfg.benchmarks)
    forgetting(base, tuned, alpha=cfg.benchmarks.forgetting_alpha)

data.py (offline slices), lm_eval_tasks/ (the lm-eval task YAMLs), sandbox.py (where HumanEval
code runs), runner.py (lm-eval + cache), forgetting.py (paired McNemar test).
"""

from typing import Any

from harness.benchmarks.forgetting import forgetting

__all__ = ["forgetting", "run_general_benchmarks"]


def __getattr__(name: str) -> Any:
    # Lazy, so `python -m harness.benchmarks.data` runs without the package importing it first.
    if name == "run_general_benchmarks":
        from harness.benchmarks.runner import run_general_benchmarks

        return run_general_benchmarks
    raise AttributeError(name)
