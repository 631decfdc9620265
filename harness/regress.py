"""Regression check of a new run against a blessed one: `make bless`, `make regress`.

Each strategy present in both runs is compared on the same test items (paired by id): held-out
score (McNemar or paired bootstrap; the two-level bootstrap over items and seeds when either run's arm
answered with several training seeds, its item scores then the mean over seeds), the items that flipped,
MMLU/HumanEval, latency and cost. A check fails only when the change is beyond its margin (task.yaml
`regress:`) *and* significant.
Exit codes: 0 nothing regressed, 1 something regressed, 3 could not compare (the test items differ).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import HarnessError
from harness.report import _read, load_run
from harness.report_record import LoadedRun
from harness.rundir import write_json
from harness.stats import TWO_LEVEL, mcnemar_p, paired_bootstrap, two_level_bootstrap

OK, REGRESSED, INCOMPARABLE = 0, 1, 3
COST_UNITS = {"strategies.*.cost.compute_per_answer": "s", "strategies.*.cost.prompt_tokens_mean": "tokens",
              "strategies.*.cost.fit_time": "s"}
"""Units of regress.json's (before, after) cost pairs (the convention of harness/run_schema.py)."""
BLESS_FILE = "BLESSED.json"
FLIP = 0.2
"""A continuous score change larger than this on one item lists the item as newly worse/better."""


def bless(run_dir: Path) -> Path:
    """Mark a completed run as its task's baseline; the run itself is not copied or moved."""
    if not (run_dir / "manifest.json").is_file():
        raise HarnessError(f"{run_dir}: not a completed run directory (no manifest.json)")
    path = run_dir.parent / BLESS_FILE
    write_json(path, {"run": run_dir.name, "blessed": datetime.now(UTC).isoformat(timespec="seconds")})
    return path


def blessed_run(task_results: Path) -> Path:
    record = _read(task_results / BLESS_FILE)
    if record is None:
        raise HarnessError(f"{task_results / BLESS_FILE}: no blessed run; `make bless RUN={task_results}/<run-id>`")
    run = task_results / record["run"]
    if not run.is_dir():
        raise HarnessError(f"{task_results / BLESS_FILE}: blessed run {run} no longer exists")
    return run


def compare_runs(base_dir: Path, new_dir: Path) -> dict[str, Any]:
    base, new = load_run(base_dir), load_run(new_dir)
    margins = new.config["regress"]
    result: dict[str, Any] = {"base": str(base_dir), "new": str(new_dir), "margins": margins, "strategies": {},
                              "status": OK, "problems": [], "units": COST_UNITS}
    base_ids, new_ids = base.split.get("test_ids", []), new.split.get("test_ids", [])
    if base_ids != new_ids:
        missing, added = sorted(set(base_ids) - set(new_ids)), sorted(set(new_ids) - set(base_ids))
        what = (f"{len(missing)} blessed test items missing (e.g. {missing[:5]}), {len(added)} new "
                f"(e.g. {added[:5]})") if missing or added else "same items in a different order"
        result.update(status=INCOMPARABLE, problems=[f"test set changed: {what}; items are never paired "
                                                     "across different test sets"])
        return result
    for name, b in base.metrics.items():
        n = new.metrics.get(name)
        if not b.ok or n is None or not n.ok:
            result["strategies"][name] = {"checks": [], "note": f"not compared: blessed {b.status}, "
                                                                f"new {n.status if n else 'absent'}"}
            continue
        result["strategies"][name] = compare_strategy(name, base, new, margins)
    failed = [c for s in result["strategies"].values() for c in s["checks"] if c["regressed"]]
    result["status"] = REGRESSED if failed else OK
    result["problems"] = [f"{c['name']}: {c['detail']}" for c in failed]
    return result


def compare_strategy(name: str, base: LoadedRun, new: LoadedRun, margins: dict) -> dict[str, Any]:
    b_items = {p["id"]: p for p in base.items[name]}
    n_items = {p["id"]: p for p in new.items[name]}
    ids = list(b_items)
    # Per item, its score under each training seed (one column without `finetune.seeds`); an arm with several
    # seeds in either run is compared on its mean over seeds by the two-level bootstrap, as the report does.
    xs, ys = (np.array([items[i].get("seed_scores") or [items[i]["score"]] for i in ids], dtype=float)
              for items in (b_items, n_items))
    x, y = xs.mean(axis=1), ys.mean(axis=1)
    binary = new.metrics[name].binary
    seeds = {"blessed": xs.shape[1], "new": ys.shape[1]} if max(xs.shape[1], ys.shape[1]) > 1 else None
    if seeds:
        low, high, p = two_level_bootstrap(ys, xs, seed=0)
        test = f"{TWO_LEVEL}, seeds blessed {seeds['blessed']} / new {seeds['new']}"
    else:
        low, high, p_boot = paired_bootstrap(y, x, seed=0)
        p = mcnemar_p(y, x) if binary else p_boot
        test = "McNemar" if binary else "paired bootstrap"
    drop = float(x.mean() - y.mean())
    checks = [_check(f"{name}.score", drop > margins["allowed_score_drop"] and p < margins["alpha"],
                     f"score {x.mean():.3f} -> {y.mean():.3f} ({-drop:+.3f}, 95% CI [{low:+.3f}, {high:+.3f}], "
                     f"{test} p = {p:.3g}; margin {margins['allowed_score_drop']})")]
    checks += _latency_check(name, b_items, n_items, ids, margins)
    checks += _benchmark_checks(name, base, new, margins)
    threshold = 0.5 if binary and seeds is None else FLIP
    flips = {"newly_wrong": [], "newly_right": []}
    for i, before, after in zip(ids, x, y):
        if before - after > threshold or after - before > threshold:
            key = "newly_wrong" if after < before else "newly_right"
            flips[key].append({"id": i, "score_before": before, "score_after": after,
                               "answer_before": b_items[i]["prediction"], "answer_after": n_items[i]["prediction"],
                               "reference": n_items[i]["reference"]})
    before, after = base.metrics[name], new.metrics[name]
    # (before, after) pairs; the units are in regress.json's `units`.
    cost = {"compute_per_answer": (before.compute_per_answer, after.compute_per_answer),
            "prompt_tokens_mean": (before.prompt_tokens_mean, after.prompt_tokens_mean),
            "fit_time": (before.record.seconds, after.record.seconds)}
    return {"checks": checks, **flips, "cost": cost, "n": len(ids), **({"seeds": seeds} if seeds else {})}


def _check(name: str, regressed: bool, detail: str, skipped: str | None = None) -> dict[str, Any]:
    return {"name": name, "regressed": bool(regressed), "detail": detail, "skipped": skipped}


def _latency_check(name: str, b_items: dict, n_items: dict, ids: list[str], margins: dict) -> list[dict]:
    from scipy.stats import mannwhitneyu

    before = np.array([b_items[i]["latency_s"] for i in ids])
    after = np.array([n_items[i]["latency_s"] for i in ids])
    p50b, p50a = np.percentile(before, 50), np.percentile(after, 50)
    growth = p50a / p50b - 1 if p50b > 0 else 0.0
    p = float(mannwhitneyu(after, before, alternative="greater").pvalue) if len(set(before) | set(after)) > 1 else 1.0
    return [_check(f"{name}.latency", growth > margins["allowed_latency_growth"] and p < margins["alpha"],
                   f"p50 {p50b:.3f} s -> {p50a:.3f} s ({growth:+.0%}), p95 {np.percentile(before, 95):.3f} s -> "
                   f"{np.percentile(after, 95):.3f} s; Mann-Whitney p = {p:.3g}; margin "
                   f"+{margins['allowed_latency_growth']:.0%}")]


def _benchmark_checks(name: str, base: LoadedRun, new: LoadedRun, margins: dict) -> list[dict]:
    from harness.report import _bench_for

    b_bench, n_bench = _bench_for(base.benchmarks, name) or {}, _bench_for(new.benchmarks, name) or {}
    checks = []
    for bench in sorted(set(b_bench) | set(n_bench)):
        b, n = b_bench.get(bench) or {}, n_bench.get(bench) or {}
        if "score" not in b or "score" not in n:
            checks.append(_check(f"{name}.{bench}", False, "not comparable", skipped="missing in one run"))
            continue
        common = sorted(set(b.get("items", {})) & set(n.get("items", {})))
        p = mcnemar_p(np.array([n["items"][i] for i in common]), np.array([b["items"][i] for i in common])) \
            if common else 1.0
        drop = b["score"] - n["score"]
        checks.append(_check(f"{name}.{bench}", drop > margins["allowed_forgetting"] and p < margins["alpha"],
                             f"{b['score']:.3f} -> {n['score']:.3f} ({-drop:+.3f}, McNemar p = {p:.3g} on "
                             f"{len(common)} paired items; margin {margins['allowed_forgetting']})"))
    return checks


def write_outputs(result: dict[str, Any], out_dir: Path) -> None:
    (out_dir / "regress.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (out_dir / "regress.md").write_text(render_markdown(result))
    junit(result).write(out_dir / "regress.junit.xml", encoding="utf-8", xml_declaration=True)


def render_markdown(r: dict[str, Any]) -> str:
    verdict = {OK: "no regression", REGRESSED: "REGRESSION", INCOMPARABLE: "could not compare"}[r["status"]]
    lines = [f"# Regression check: {verdict}", "", f"- blessed: `{r['base']}`", f"- new: `{r['new']}`", ""]
    lines += [f"- {p}" for p in r["problems"]] + [""]
    for name, s in r["strategies"].items():
        lines += [f"## {name}", ""]
        if s.get("note"):
            lines += [s["note"], ""]
            continue
        lines += [f"- {'FAIL' if c['regressed'] else ('skip' if c['skipped'] else 'ok  ')} `{c['name']}`: "
                  f"{c['detail']}" for c in s["checks"]]
        lines += [f"- cost: compute per answer {s['cost']['compute_per_answer'][0]:.3f} s -> "
                  f"{s['cost']['compute_per_answer'][1]:.3f} s; fit {s['cost']['fit_time'][0]:.1f} s -> "
                  f"{s['cost']['fit_time'][1]:.1f} s", ""]
        for key in ("newly_wrong", "newly_right"):
            if s[key]:
                lines += [f"{key.replace('_', ' ')} ({len(s[key])}):", "",
                          "| id | before | after | reference |", "| --- | --- | --- | --- |"]
                lines += [f"| `{f['id']}` | {_cell(f['answer_before'])} ({f['score_before']:.2f}) | "
                          f"{_cell(f['answer_after'])} ({f['score_after']:.2f}) | {_cell(f['reference'])} |"
                          for f in s[key]] + [""]
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")[:120]


def junit(r: dict[str, Any]) -> ET.ElementTree:
    checks = [c for s in r["strategies"].values() for c in s["checks"]]
    suite = ET.Element("testsuite", name="regress", tests=str(max(1, len(checks))),
                       failures=str(sum(c["regressed"] for c in checks)),
                       skipped=str(sum(bool(c["skipped"]) for c in checks)))
    if r["status"] == INCOMPARABLE:
        case = ET.SubElement(suite, "testcase", classname="regress", name="test_set")
        ET.SubElement(case, "error", message=r["problems"][0])
        suite.set("errors", "1")
    for c in checks:
        case = ET.SubElement(suite, "testcase", classname="regress", name=c["name"])
        if c["regressed"]:
            ET.SubElement(case, "failure", message=c["detail"])
        elif c["skipped"]:
            ET.SubElement(case, "skipped", message=c["skipped"])
        else:
            ET.SubElement(case, "system-out").text = c["detail"]
    return ET.ElementTree(suite)
