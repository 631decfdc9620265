"""Run the benchmark sections and write results/bench/<date>/bench.json and bench.md."""

from __future__ import annotations

import importlib
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from harness.speed import SECTIONS


def machine() -> dict:
    import psutil
    import torch

    return {
        "cpu_count": os.cpu_count(), "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "torch_threads": torch.get_num_threads(), "device": "cuda" if torch.cuda.is_available() else "cpu",
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(), "torch": torch.__version__,
    }


def main(argv: list[str]) -> int:
    wanted = [s if s.startswith("harness.speed.") else f"harness.speed.{s}" for s in argv] or SECTIONS
    now = datetime.now(UTC)
    out_dir = Path("results/bench") / now.strftime("%Y-%m-%d")
    out_dir.mkdir(parents=True, exist_ok=True)
    info = machine()
    results: dict = {"machine": info, "started": now.isoformat(timespec="seconds"), "sections": {}}
    if (out_dir / "bench.json").is_file():
        earlier = json.loads((out_dir / "bench.json").read_text())
        if argv:  # a partial run (some sections) keeps the day's other sections
            results["sections"] = dict(earlier.get("sections", {}))
        else:  # a full run keeps the day's earlier one beside it
            kept = out_dir / "earlier" / earlier.get("started", "unknown").replace(":", "")
            kept.mkdir(parents=True, exist_ok=True)
            for name in ("bench.json", "bench.md"):
                if (out_dir / name).is_file():
                    (out_dir / name).rename(kept / name)
            print(f"[bench] the day's earlier results moved to {kept}", file=sys.stderr)
    md = [f"# Benchmarks {now:%Y-%m-%d %H:%M} UTC", "",
          f"Machine: {info['cpu_count']} CPU cores, {info['ram_gib']} GiB RAM, {info['torch_threads']} torch "
          f"threads, device {info['device']} {info['gpu'] or ''}; torch {info['torch']}, Python {info['python']}.",
          ""]
    started = time.perf_counter()
    for name in wanted:
        print(f"[bench] {name}", file=sys.stderr, flush=True)
        began = time.perf_counter()
        section = importlib.import_module(name).run(info)
        section["section_wall_s"] = round(time.perf_counter() - began, 1)
        results["sections"][name.rsplit(".", 1)[-1]] = section
        results["wall_s"] = round(time.perf_counter() - started, 1)
        # Written after every section, so a long bench that is stopped keeps what it measured.
        (out_dir / "bench.json").write_text(json.dumps(results, indent=2) + "\n")
        total = [f"Wall time: {results['wall_s'] / 60:.1f} min for the {len(wanted)} section(s) run now; "
                 f"{len(results['sections'])} of {len(SECTIONS)} sections in this file (goal: all in under 20 min).",
                 ""]
        body = md + total + [f"{s.get('markdown', '')}\n\n_(section wall time {s['section_wall_s']} s)_\n"
                             for s in results["sections"].values()]
        (out_dir / "bench.md").write_text("\n".join(body) + "\n")
    print(f"wrote {out_dir / 'bench.md'} and bench.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
