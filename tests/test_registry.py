"""The registry is the one list of strategies, backends and scorers: config's choices follow it, every
entry imports and has its interface, and no other harness module decides anything on a strategy's name."""

from __future__ import annotations

import ast
import dataclasses
import inspect

import pytest

from harness import registry
from harness.config import BACKEND_NAMES, SCORER_NAMES, STRATEGY_NAMES, TaskConfig
from tests.conftest import ROOT


def test_config_choices_are_the_registry_keys():
    assert STRATEGY_NAMES == tuple(registry.STRATEGIES)
    assert SCORER_NAMES == tuple(registry.SCORERS)
    assert BACKEND_NAMES == tuple(registry.BACKENDS)
    fields = {f.name: f for f in dataclasses.fields(TaskConfig)}
    assert fields["strategies"].metadata["choices"] == STRATEGY_NAMES
    assert fields["scorer"].metadata["choices"] == SCORER_NAMES
    model = {f.name: f for f in dataclasses.fields(fields["model"].default_factory)}  # type: ignore[misc]
    assert model["backend"].metadata["choices"] == ("auto", *BACKEND_NAMES)
    assert TaskConfig().strategies == list(STRATEGY_NAMES)


@pytest.mark.parametrize("name", list(registry.STRATEGIES))
def test_every_strategy_imports_and_has_the_protocol(name):
    cls = registry.strategy_class(name)
    strategy = cls()
    assert strategy.name == name
    assert isinstance(cls.complexity, int)
    for method in ("fit", "answer"):
        assert list(inspect.signature(getattr(strategy, method)).parameters)[-1] == "ctx", method


def test_strategy_complexity_ranks_give_the_simplicity_order():
    ranks = {n: registry.strategy_class(n).complexity for n in registry.STRATEGIES}
    assert sorted(ranks, key=ranks.get) == ["prompt", "rag", "finetune", "rag_finetune"]


@pytest.mark.parametrize("name", list(registry.BACKENDS))
def test_every_backend_imports_and_has_the_protocol(name):
    cls = registry.backend_class(name)
    assert cls.name == name
    for method in ("generate", "render", "count_tokens", "adapter"):
        assert callable(getattr(cls, method)), method


@pytest.mark.parametrize("name", list(registry.SCORERS))
def test_every_scorer_imports_and_says_whether_it_is_binary(name):
    from harness.scoring import BINARY

    if registry.SCORERS[name].batch:  # a class built with the task's config, exercised by its own tests
        assert callable(registry.scorer(name).score_all)
        return
    score = registry.scorer(name)
    values = [score("The answer is B.", "B"), score("B", "B"), score("nothing alike", "B")]
    assert all(0.0 <= v <= 1.0 for v in values) and values[1] == 1.0
    assert (name in BINARY) == registry.SCORERS[name].binary
    if registry.SCORERS[name].binary:
        assert set(values) <= {0.0, 1.0}


def test_old_names_still_resolve_through_the_registry():
    import strategies
    from harness import backends

    assert strategies.REGISTRY is registry.STRATEGIES and backends.REGISTRY is registry.BACKENDS
    assert type(strategies.create("prompt")).__name__ == "PromptStrategy"


UNRELATED = {
    ("harness/data.py", "prompt"), ("harness/training/formatting.py", "prompt"),
    ("harness/speed/training.py", "prompt"), ("harness/benchmarks/sandbox.py", "prompt"),
    ("harness/report_sections.py", "prompt"),
    ("harness/retrieval/__init__.py", "rag"), ("harness/training/__init__.py", "finetune"),
    ("harness/speed/compare_cache.py", "prompt"), ("harness/speed/compare_cache.py", "rag"),
    ("harness/speed/compare_cache.py", "finetune"),
    ("harness/backends/openai.py", "prompt"), ("harness/backends/server_lm_eval.py", "prompt"),
    ("harness/training/raft.py", "prompt"), ("harness/caveats.py", "prompt"), ("harness/caveats.py", "rag"),
}
"""String constants equal to a strategy name that are something else: the prompt/completion data field,
HumanEval's `prompt`, the `prompt` field of OpenAI-style requests, config sections (`prompt.k_shot`, the caveat on
`prompt.search`/`rag.search`), the
cache folders named before there were other strategies, and the task overrides of `make bench`'s cold/warm
compare (data, as in a task.yaml)."""


def test_no_harness_module_but_the_registry_names_a_strategy():
    found = set()
    for path in sorted((ROOT / "harness").rglob("*.py")):
        where = path.relative_to(ROOT).as_posix()
        if where == "harness/registry.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in registry.STRATEGIES:
                found.add((where, node.value))
    assert found <= UNRELATED, sorted(found - UNRELATED)
