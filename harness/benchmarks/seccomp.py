"""A seccomp-BPF filter that stops a process from creating processes or running programs, for good.

`sandbox_child.py` installs it before the untrusted code runs; `sandbox.py` asks `support()` whether this
machine can. Once installed, the kernel answers, for the process and everything it could start:

- fork, vfork, clone without CLONE_THREAD, execve, execveat, setsid, setpgid: EPERM;
- clone3: ENOSYS, because its flags sit in a struct a filter cannot read; glibc then falls back to clone,
  so threads (clone with CLONE_THREAD) keep working;
- a system call of another ABI (i386 or x32 on x86_64, an unknown arch): the process is killed.

Unlike an audit hook, nothing the code does in Python (or through ctypes) can lift it. Standard library
only: the child loads this file by path before anything else is imported.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct

CLONE_THREAD = 0x00010000
SECCOMP_SET_MODE_FILTER, SECCOMP_GET_ACTION_AVAIL, SECCOMP_FILTER_FLAG_TSYNC = 1, 2, 1
PR_SET_NO_NEW_PRIVS = 38
RET_KILL_PROCESS, RET_ALLOW, RET_ERRNO = 0x80000000, 0x7FFF0000, 0x00050000
X32_SYSCALL_BIT = 0x40000000
# Classic BPF opcodes: load a word of seccomp_data, jumps, return.
LD_ABS_W, JEQ, JGE, JSET, RET = 0x20, 0x15, 0x35, 0x45, 0x06
NR_OFFSET, ARCH_OFFSET, ARG0_LOW_OFFSET = 0, 4, 16  # struct seccomp_data; both arches are little-endian

# Per `uname -m`: its AUDIT_ARCH value and system call numbers (asm/unistd.h). aarch64 has no fork or vfork.
ARCHES: dict[str, dict] = {
    "x86_64": {"audit": 0xC000003E, "seccomp": 317, "clone": 56, "clone3": 435,
               "deny": {"fork": 57, "vfork": 58, "execve": 59, "execveat": 322, "setpgid": 109, "setsid": 112}},
    "aarch64": {"audit": 0xC00000B7, "seccomp": 277, "clone": 220, "clone3": 435,
                "deny": {"execve": 221, "execveat": 281, "setpgid": 154, "setsid": 157}},
}


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def support() -> str:
    """'' where this process can install the filter, else why not, in words."""
    machine = os.uname().machine
    if machine not in ARCHES or struct.calcsize("P") != 8:
        return f"no filter written for this architecture ({machine}, {struct.calcsize('P') * 8}-bit Python)"
    action = ctypes.c_uint32(RET_ERRNO)
    if _libc().syscall(ARCHES[machine]["seccomp"], SECCOMP_GET_ACTION_AVAIL, 0, ctypes.byref(action)) != 0:
        return f"the kernel has no seccomp filters ({os.strerror(ctypes.get_errno())})"
    return ""


def _assemble(program: list) -> bytes:
    """Encode BPF instructions (code, k, jump-if-true label, jump-if-false label) and label strings."""
    where, index = {}, 0
    for item in program:
        if isinstance(item, str):
            where[item] = index
        else:
            index += 1
    out, index = [], 0
    for item in program:
        if isinstance(item, str):
            continue
        code, k, jt, jf = item
        offsets = [where[j] - index - 1 if j else 0 for j in (jt, jf)]
        assert all(0 <= o < 256 for o in offsets), "BPF jumps go forward, by under 256 instructions"
        out.append(struct.pack("=HBBI", code, offsets[0], offsets[1], k))
        index += 1
    return b"".join(out)


def build_filter() -> bytes:
    """The filter's BPF program for both supported arches; any other arch is killed (fail closed)."""
    program: list = [(LD_ABS_W, ARCH_OFFSET, None, None)]
    program += [(JEQ, spec["audit"], name, None) for name, spec in ARCHES.items()]
    program.append((RET, RET_KILL_PROCESS, None, None))
    for name, spec in ARCHES.items():
        program += [name, (LD_ABS_W, NR_OFFSET, None, None)]
        if name == "x86_64":  # the x32 ABI shares the x86_64 arch value: refuse all of it
            program.append((JGE, X32_SYSCALL_BIT, "eperm", None))
        program += [(JEQ, spec["clone"], "clone", None), (JEQ, spec["clone3"], "enosys", None)]
        program += [(JEQ, nr, "eperm", None) for nr in spec["deny"].values()]
        program.append((RET, RET_ALLOW, None, None))
    program += ["clone", (LD_ABS_W, ARG0_LOW_OFFSET, None, None), (JSET, CLONE_THREAD, "allow", "eperm"),
                "allow", (RET, RET_ALLOW, None, None),
                "eperm", (RET, RET_ERRNO | errno.EPERM, None, None),
                "enosys", (RET, RET_ERRNO | errno.ENOSYS, None, None)]
    return _assemble(program)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install() -> None:
    """Apply the filter to every thread of this process and all it starts; raise OSError if it fails."""
    reason = support()
    if reason:
        raise OSError(errno.ENOSYS, f"seccomp: {reason}")
    libc, code = _libc(), build_filter()
    buffer = ctypes.create_string_buffer(code, len(code))
    program = _SockFprog(len(code) // 8, ctypes.addressof(buffer))
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:  # required to filter without CAP_SYS_ADMIN
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    nr = ARCHES[os.uname().machine]["seccomp"]
    if libc.syscall(nr, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, ctypes.byref(program)) != 0:
        raise OSError(ctypes.get_errno(), "seccomp(SECCOMP_SET_MODE_FILTER) failed")
