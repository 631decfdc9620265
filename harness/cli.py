"""Command line: `python -m harness <command>`, one of compare, report, validate, bless, regress, export, cache, keys.

    python -m harness compare stdlib_qa            # all strategies of tasks/stdlib_qa
    python -m harness compare stdlib_qa --strategies prompt --limit 20
    python -m harness report results/stdlib_qa/<run-id>
    python -m harness validate tasks/my_task       # check task.yaml and data, write nothing
    python -m harness bless results/stdlib_qa/<run-id>
    python -m harness regress stdlib_qa            # compare, then check against the blessed run
    python -m harness regress --base RUN --new RUN # exit 0 ok, 1 regression, 3 cannot compare
    python -m harness export results/stdlib_signatures/<run-id>  # the winner as GGUF + Modelfile, re-scored
    python -m harness keys                         # every task.yaml key with its default
    python -m harness cache --prune-unused-days 30 # cache size; remove entries unused for 30 days

Exit codes: 0 done; 1 regression (regress); 2 bad input or usage, said in one line; 3 runs that
cannot be compared (regress); 4 internal error (the traceback is written to a log file, named);
130 interrupted.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import traceback
from pathlib import Path
from typing import NoReturn

from harness import __version__
from harness.errors import HarnessError

USER_ERROR, INTERNAL_ERROR, INTERRUPTED = 2, 4, 130


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1 (`--limit 0` would otherwise mean "no limit")."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors in one line like every other error (exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(USER_ERROR, f"error: {self.prog}: {one_line(message)} (see --help)\n")


def _add_run_options(p: argparse.ArgumentParser, task_help: str = "task name (folder under tasks/) or path to "
                     "a task folder", task_optional: bool = False) -> None:
    """The options of a compare run (also taken by `regress TASK`, which runs one)."""
    p.add_argument("task", nargs="?" if task_optional else None, help=task_help)
    p.add_argument("--strategies", help="comma-separated subset, e.g. prompt,rag")
    p.add_argument("--limit", type=positive_int, help="score only the first N test items (quick runs)")
    p.add_argument("--model", help="override model.name: a local directory or hub id, or the server's model id "
                                   "(backend openai / ollama)")
    p.add_argument("--backend", help="override model.backend: auto, transformers, llamacpp, openai (any "
                                     "OpenAI-compatible /v1 server) or ollama")
    p.add_argument("--base-url", help="override model.base_url: the server's /v1 URL (openai) or Ollama's host")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override a task.yaml key, checked by the same schema; repeatable (--set rag.k=2 "
                        "--set generation.stop='[\"\\n\"]'); recorded in the run's config.json and run.json")
    p.add_argument("--allow-contamination", action="store_true", help="allow test prompts that also occur in train")
    p.add_argument("--results", default="results", help="results root (default: results)")
    p.add_argument("--no-benchmarks", action="store_true", help="skip MMLU/HumanEval (quick runs)")
    p.add_argument("--allow-code-execution", action="store_true",
                   help="score HumanEval by running model-written code in the sandbox")
    p.add_argument("--no-cache", action="store_true",
                   help="generate every answer again instead of reusing cached ones (fresh latency)")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m harness", description=__doc__,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    compare = sub.add_parser("compare", help="run the strategies of a task and write a report")
    _add_run_options(compare)

    report = sub.add_parser("report", help="rebuild report.md, report.html and report.json of a run directory")
    report.add_argument("run", type=Path)

    validate = sub.add_parser("validate", help="check a task's config and data without running anything")
    validate.add_argument("task")
    validate.add_argument("--allow-contamination", action="store_true")
    validate.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                          help="override a task.yaml key, as for compare")

    bless = sub.add_parser("bless", help="mark a run as the baseline of its task")
    bless.add_argument("run", type=Path)

    regress = sub.add_parser("regress", help="compare with the blessed run; exit 1 on regression, 3 if "
                                             "the runs cannot be compared")
    _add_run_options(regress, task_help="run compare on this task (with the options below), then check it "
                                        "against its blessed run", task_optional=True)
    regress.add_argument("--base", type=Path, help="compare two existing runs: the baseline run directory")
    regress.add_argument("--new", type=Path, help="... and the new run directory")

    cache = sub.add_parser("cache", help="show the cache's size; remove entries not used for N days")
    cache.add_argument("--prune-unused-days", type=non_negative_float, metavar="N",
                       help="remove cache entries whose last use is more than N days ago")
    cache.add_argument("--dry-run", action="store_true", help="with --prune-unused-days: list, remove nothing")

    export = sub.add_parser("export", help="export a run's trained arm: merged model, GGUF (f16 and 4-bit), "
                                           "Ollama Modelfile, and a served re-score on the held-out items")
    export.add_argument("run", type=Path, help="a finished run directory (results/<task>/<run-id>)")
    export.add_argument("--strategy", help="the arm to export (default: the verdict's choice, if it has trained "
                                           "weights)")
    export.add_argument("--quant", default="Q4_K_M", help="llama.cpp quantization type of the 4-bit file "
                                                          "(default Q4_K_M; e.g. Q4_0, Q5_K_M, Q8_0)")
    export.add_argument("--no-rescore", dest="rescore", action="store_false",
                        help="write the files only; skip answering the held-out items with them")
    export.add_argument("--ollama-create", metavar="NAME", help="also `ollama create NAME` and score through "
                                                               "Ollama (needs a server at OLLAMA_HOST)")

    keys = sub.add_parser("keys", help="print every task.yaml key, its default and meaning (Markdown)")
    keys.add_argument("--write", type=Path, help="replace the table between the keys markers of this file")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except HarnessError as exc:
        print(f"error: {one_line(str(exc))}", file=sys.stderr)
        return USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`python -m harness keys | head`): nothing is wrong, and nothing more to say.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # noqa: BLE001 -- a short message and a log, never a bare traceback
        log = _write_crash_log(args.command)
        where = f"; traceback in {log}" if log else ""
        print(f"internal error in `{args.command}`: {type(exc).__name__}: {one_line(str(exc))[:300]}{where} "
              f"(a bug in the harness: please report it with that file)", file=sys.stderr)
        return INTERNAL_ERROR


def one_line(text: str) -> str:
    return " ".join(text.split()) or "(no message)"


def _write_crash_log(command: str) -> Path | None:
    from datetime import UTC, datetime

    from harness.models import cache_root

    try:
        folder = cache_root() / "logs"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}-{command}.log"
        path.write_text(f"python -m harness {' '.join(sys.argv[1:])}\n\n{traceback.format_exc()}", encoding="utf-8")
        return path
    except OSError:
        return None


def cmd_compare(args: argparse.Namespace) -> int:
    from harness.report import terminal_summary

    run_dir = _run_compare(args)
    print()
    print(terminal_summary(run_dir))
    print(f"\nreport: {run_dir / 'report.md'} (also report.html, report.json)")
    return 0


def _run_compare(args: argparse.Namespace) -> Path:
    """Load the task with the command line's overrides, check them, and run compare."""
    from harness.config import STRATEGY_NAMES
    from harness.rundir import check_results_root
    from harness.runner import compare

    check_results_root(Path(args.results))
    task = load_run_task(args)
    names = None
    if args.strategies is not None:
        names = [s.strip() for s in args.strategies.split(",")]
        if not all(names):
            raise HarnessError(f"--strategies {args.strategies!r}: an empty name (known: {', '.join(STRATEGY_NAMES)})")
        unknown = [s for s in names if s not in STRATEGY_NAMES]
        if unknown:
            raise HarnessError(f"--strategies: unknown {', '.join(unknown)} (known: {', '.join(STRATEGY_NAMES)})")
        if len(set(names)) != len(names):
            raise HarnessError(f"--strategies {args.strategies!r}: a strategy is named twice")
    if args.allow_code_execution:
        bench = dataclasses.replace(task.config.benchmarks, allow_code_execution=True)
        task.config = dataclasses.replace(task.config, benchmarks=bench)
    return compare(task, Path(args.results), names, args.limit,
                   log=lambda m: print(m, file=sys.stderr, flush=True), use_cache=not args.no_cache,
                   run_benchmarks=not args.no_benchmarks)


OPTION_KEYS = {"--model": ("model", "model.name"), "--backend": ("backend", "model.backend"),
               "--base-url": ("base_url", "model.base_url")}
"""Run options that set a task.yaml key, as `--set KEY=VALUE` does: checked by the same schema."""


def load_run_task(args: argparse.Namespace):
    """The task with `--set` and the key options (`--model`, `--backend`, `--base-url`) applied; an error in
    one of them names the option, and the run records which option set each key."""
    from harness.errors import ConfigError
    from harness.task import load_task

    sets, labels = list(args.overrides), {}
    for option, (dest, key) in OPTION_KEYS.items():
        value = getattr(args, dest, None)
        if value is not None:
            pair = f"{key}={json.dumps(value)}"  # quoted: the value is a string, whatever YAML would make of it
            sets.append(pair)
            labels[f"--set {pair}"] = (option, f"{option} {value}")
    try:
        task = load_task(args.task, allow_contamination=args.allow_contamination, overrides=sets)
    except ConfigError as exc:
        message = str(exc)
        for label, (_, shown) in labels.items():
            message = message.replace(label, shown)
        raise ConfigError(message) from None
    for label, (option, _) in labels.items():
        key = label.removeprefix("--set ").split("=", 1)[0]
        task.overrides[key] = option
    return task


def cmd_report(args: argparse.Namespace) -> int:
    from harness.report import write_report
    from harness.rundir import require_complete

    print(write_report(require_complete(args.run)))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from harness.task import load_task

    task = load_task(args.task, allow_contamination=args.allow_contamination, overrides=args.overrides)
    d = task.data
    print(f"{task.config.name}: {len(d.train)} train / {len(d.dev)} dev / {len(d.test)} test; formats {d.formats}")
    for warning in d.warnings:
        print(f"warning: {warning}")
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    from harness import cache_admin

    if args.prune_unused_days is not None:
        removed = cache_admin.prune(args.prune_unused_days, dry_run=args.dry_run)
        verb = "would remove" if args.dry_run else "removed"
        for entry in removed:
            print(f"{verb} {entry.kind} {entry.path} ({entry.bytes / 1e6:.1f} MB)")
        print(f"{verb} {len(removed)} entries, {sum(e.bytes for e in removed) / 1e6:.1f} MB\n")
    print(cache_admin.summary(cache_admin.entries()))
    return 0


def cmd_bless(args: argparse.Namespace) -> int:
    from harness.regress import bless
    from harness.rundir import require_complete

    require_complete(args.run)
    print(f"blessed {args.run} ({bless(args.run)})")
    return 0


def cmd_regress(args: argparse.Namespace) -> int:
    from harness import regress
    from harness.rundir import require_complete

    if args.base or args.new:
        if not (args.base and args.new) or args.task:
            raise HarnessError("regress: give a TASK, or both --base RUN and --new RUN")
        base, new = require_complete(args.base, "baseline run"), require_complete(args.new, "new run")
    elif args.task:
        # The blessed run must exist before an expensive compare starts.
        name = load_run_task(args).config.name
        base = require_complete(regress.blessed_run(Path(args.results) / name), "blessed run")
        new = _run_compare(args)
    else:
        raise HarnessError("regress: give a TASK, or both --base RUN and --new RUN")
    result = regress.compare_runs(base, new)
    regress.write_outputs(result, new)
    print(regress.render_markdown(result))
    print(f"written: {new / 'regress.md'}, regress.json, regress.junit.xml")
    return result["status"]


def cmd_export(args: argparse.Namespace) -> int:
    from harness.export.modelfile import TemplateMismatch
    from harness.export.pipeline import export_run

    try:
        folder = export_run(args.run, args.strategy, args.quant, args.rescore, args.ollama_create)
    except TemplateMismatch as exc:
        # The error stays one line; the two renderings it points at go above it, side by side.
        headline, _, detail = str(exc).partition("\n")
        print(detail, file=sys.stderr)
        raise HarnessError(f"{headline} (the two renderings are shown above)") from None
    print(f"exported to {folder} (manifest.json lists every file); report rebuilt: {args.run / 'report.md'}")
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from harness.config import config_reference

    rows = ["| key | default | meaning |", "| --- | --- | --- |"]
    rows += [f"| `{key}` | `{default}` | {help_text} |" for key, default, help_text in config_reference()]
    table = "\n".join(rows)
    if args.write is None:
        print(table)
        return 0
    text = args.write.read_text(encoding="utf-8")
    start, end = "<!-- keys:start -->\n", "\n<!-- keys:end -->"
    if start not in text or end not in text:
        raise HarnessError(f"{args.write}: no <!-- keys:start --> / <!-- keys:end --> markers")
    head, rest = text.split(start, 1)
    args.write.write_text(head + start + table + end + rest.split(end, 1)[1], encoding="utf-8")
    print(f"updated the key table in {args.write}")
    return 0


COMMANDS = {"compare": cmd_compare, "report": cmd_report, "validate": cmd_validate, "bless": cmd_bless,
            "regress": cmd_regress, "keys": cmd_keys, "cache": cmd_cache, "export": cmd_export}
