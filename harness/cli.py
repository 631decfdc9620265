"""Command line: `python -m harness {compare,report,validate,keys}`.

    python -m harness compare stdlib_qa            # all strategies of tasks/stdlib_qa
    python -m harness compare stdlib_qa --strategies prompt --limit 20
    python -m harness report results/stdlib_qa/<run-id>
    python -m harness validate tasks/my_task       # check task.yaml and data, write nothing
    python -m harness bless results/stdlib_qa/<run-id>
    python -m harness regress stdlib_qa            # compare, then check against the blessed run
    python -m harness regress --base RUN --new RUN # exit 0 ok, 1 regression, 3 cannot compare
    python -m harness keys                         # every task.yaml key with its default
    python -m harness cache --prune-unused-days 30 # cache size; remove entries unused for 30 days
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from harness.errors import HarnessError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    compare = sub.add_parser("compare", help="run the strategies of a task and write a report")
    compare.add_argument("task", help="task name (folder under tasks/) or path to a task folder")
    compare.add_argument("--strategies", help="comma-separated subset, e.g. prompt,rag")
    compare.add_argument("--limit", type=int, help="score only the first N test items (quick runs)")
    compare.add_argument("--model", help="override model.name: a local directory or hub id")
    compare.add_argument("--allow-contamination", action="store_true",
                         help="allow test prompts that also occur in train")
    compare.add_argument("--results", default="results", help="results root (default: results)")
    compare.add_argument("--no-benchmarks", action="store_true", help="skip MMLU/HumanEval (quick runs)")
    compare.add_argument("--allow-code-execution", action="store_true",
                         help="score HumanEval by running model-written code in the sandbox")
    compare.add_argument("--no-cache", action="store_true",
                         help="generate every answer again instead of reusing cached ones (fresh latency)")

    report = sub.add_parser("report", help="rebuild report.md from a run directory")
    report.add_argument("run", type=Path)

    validate = sub.add_parser("validate", help="check a task's config and data without running anything")
    validate.add_argument("task")
    validate.add_argument("--allow-contamination", action="store_true")

    bless = sub.add_parser("bless", help="mark a run as the baseline of its task")
    bless.add_argument("run", type=Path)

    regress = sub.add_parser("regress", help="compare with the blessed run; exit 1 on regression, 3 if "
                                             "the runs cannot be compared")
    regress.add_argument("task", nargs="?", help="run compare on this task, then compare with its blessed run")
    regress.add_argument("--base", type=Path, help="compare two existing runs: the baseline run directory")
    regress.add_argument("--new", type=Path, help="... and the new run directory")
    regress.add_argument("--results", default="results", help="results root (default: results)")

    cache = sub.add_parser("cache", help="show the cache's size; remove entries not used for N days")
    cache.add_argument("--prune-unused-days", type=float, metavar="N",
                       help="remove cache entries whose last use is more than N days ago")
    cache.add_argument("--dry-run", action="store_true", help="with --prune-unused-days: list, remove nothing")

    keys = sub.add_parser("keys", help="print every task.yaml key, its default and meaning (Markdown)")
    keys.add_argument("--write", type=Path, help="replace the table between the keys markers of this file")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def cmd_compare(args: argparse.Namespace) -> int:
    from harness.config import STRATEGY_NAMES
    from harness.report import terminal_summary
    from harness.runner import compare
    from harness.task import load_task

    task = load_task(args.task, allow_contamination=args.allow_contamination)
    if args.model:
        task.config = dataclasses.replace(task.config, model=dataclasses.replace(task.config.model, name=args.model))
    names = None
    if args.strategies:
        names = [s.strip() for s in args.strategies.split(",") if s.strip()]
        unknown = [s for s in names if s not in STRATEGY_NAMES]
        if unknown:
            raise HarnessError(f"--strategies: unknown {', '.join(unknown)} (known: {', '.join(STRATEGY_NAMES)})")
    if args.allow_code_execution:
        bench = dataclasses.replace(task.config.benchmarks, allow_code_execution=True)
        task.config = dataclasses.replace(task.config, benchmarks=bench)
    run_dir = compare(task, Path(args.results), names, args.limit,
                      log=lambda m: print(m, file=sys.stderr, flush=True), use_cache=not args.no_cache,
                      run_benchmarks=not args.no_benchmarks)
    print()
    print(terminal_summary(run_dir))
    print(f"\nreport: {run_dir / 'report.md'} (also report.html, report.json)")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from harness.report import write_report

    if not (args.run / "config.json").is_file():
        raise HarnessError(f"{args.run}: not a run directory (no config.json)")
    print(write_report(args.run))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from harness.task import load_task

    task = load_task(args.task, allow_contamination=args.allow_contamination)
    d = task.data
    print(f"{task.config.name}: {len(d.train)} train / {len(d.dev)} dev / {len(d.test)} test; formats {d.formats}")
    for warning in d.warnings:
        print(f"warning: {warning}")
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    from harness import cache_admin

    if args.prune_unused_days is not None:
        if args.prune_unused_days < 0:
            raise HarnessError("--prune-unused-days: must be 0 or more")
        removed = cache_admin.prune(args.prune_unused_days, dry_run=args.dry_run)
        verb = "would remove" if args.dry_run else "removed"
        for entry in removed:
            print(f"{verb} {entry.kind} {entry.path} ({entry.bytes / 1e6:.1f} MB)")
        print(f"{verb} {len(removed)} entries, {sum(e.bytes for e in removed) / 1e6:.1f} MB\n")
    print(cache_admin.summary(cache_admin.entries()))
    return 0


def cmd_bless(args: argparse.Namespace) -> int:
    from harness.regress import bless

    print(f"blessed {args.run} ({bless(args.run)})")
    return 0


def cmd_regress(args: argparse.Namespace) -> int:
    from harness import regress
    from harness.runner import compare
    from harness.task import load_task

    if args.base or args.new:
        if not (args.base and args.new) or args.task:
            raise HarnessError("regress: give a TASK, or both --base RUN and --new RUN")
        base, new = args.base, args.new
        for run in (base, new):
            if not (run / "config.json").is_file():
                raise HarnessError(f"{run}: not a run directory (no config.json)")
    elif args.task:
        task = load_task(args.task)
        base = regress.blessed_run(Path(args.results) / task.config.name)
        new = compare(task, Path(args.results), log=lambda m: print(m, file=sys.stderr, flush=True))
    else:
        raise HarnessError("regress: give a TASK, or both --base RUN and --new RUN")
    result = regress.compare_runs(base, new)
    regress.write_outputs(result, new)
    print(regress.render_markdown(result))
    print(f"written: {new / 'regress.md'}, regress.json, regress.junit.xml")
    return result["status"]


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
            "regress": cmd_regress, "keys": cmd_keys, "cache": cmd_cache}
