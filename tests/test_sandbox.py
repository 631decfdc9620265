"""The HumanEval sandbox stops runaway and hostile code: infinite loops, memory bombs, writes outside
its directory, network access. Each layer is also checked alone where the machine has it."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from harness.benchmarks.sandbox import SandboxLimits, _unshare_prefix, landlock_abi, run_python

FAST = SandboxLimits(timeout_s=1.0, memory_mb=512)


def test_plain_code_runs_and_can_use_its_own_directory():
    result = run_python("open('out.txt', 'w').write('inside'); print(open('out.txt').read())", FAST)
    assert (result.status, result.stdout.strip()) == ("ok", "inside")


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


LAYERS = [pytest.param({"landlock": True, "audit": False}, id="landlock-only",
                       marks=pytest.mark.skipif(not landlock_abi(), reason="no Landlock in this kernel")),
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
