"""`make bench`: speed and memory figures, measured side by side in one run, written to a file.

Each section is a module in this package with `run(machine: dict) -> dict`, returning its
figures (every key names its unit: `_s`, `_per_s`, `_bytes`, `_ratio`...) plus a `markdown` string
for bench.md. Sections are listed in SECTIONS; `python -m harness.speed [section ...]` runs them.
"""

SECTIONS: list[str] = [
    "harness.speed.compare_cache",
    "harness.speed.generation",
    "harness.speed.lm_eval_overhead",
    "harness.speed.retrieval",
    "harness.speed.training",
    "harness.speed.training_precision",
]
