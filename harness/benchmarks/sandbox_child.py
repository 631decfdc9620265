"""First code of a sandboxed process: lock it down, then run `main.py` from its directory.

Started by `sandbox.run_python` as `python -I -B sandbox_child.py <dir> <memory_bytes> <cpu_s>
<file_bytes> <landlock 0/1> <audit 0/1>`, with `<dir>` (a fresh temporary directory) as its
working directory. Standard library only: it runs before anything else is imported. In order:

1. resource limits: address space, CPU seconds, size of a written file, no core dumps;
2. Landlock (Linux >= 5.13): the kernel refuses writes outside `<dir>`, TCP connect/bind
   (ABI >= 4) and signals to processes outside the sandbox (ABI >= 6);
3. an audit hook (PEP 578) that refuses the same writes, sockets, new processes, signals, rlimit
   changes and ctypes. It is a second layer, and the only one where Landlock is missing.

Exit status 3 means the lockdown itself failed; the code was not run.
"""

import ctypes
import os
import resource
import runpy
import struct
import sys

# Landlock ABI constants (linux/landlock.h); syscall numbers are the same on x86_64 and arm64.
SYS_CREATE_RULESET, SYS_ADD_RULE, SYS_RESTRICT_SELF = 444, 445, 446
PR_SET_NO_NEW_PRIVS = 38
RULE_PATH_BENEATH = 1
FS_WRITE = (1 << 1) | (1 << 4) | (1 << 5) | sum(1 << b for b in range(6, 13))  # write, remove, make*
FS_REFER, FS_TRUNCATE = 1 << 13, 1 << 14
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
BLOCKED_EVENTS = ("socket.", "subprocess.", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
                  "os.fork", "os.forkpty", "os.kill", "os.killpg", "pty.", "ctypes.", "resource.",
                  "os.chroot", "winreg.", "webbrowser.")
PATH_EVENTS = {"os.mkdir": (0,), "os.rmdir": (0,), "os.remove": (0,), "os.rename": (0, 1),
               "os.link": (0, 1), "os.symlink": (1,), "os.truncate": (0,), "os.chmod": (0,),
               "os.chown": (0,), "os.chflags": (0,), "os.lchflags": (0,), "os.utime": (0,),
               "os.mkfifo": (0,), "os.mknod": (0,), "shutil.rmtree": (0,), "os.setxattr": (0,),
               "os.removexattr": (0,)}


def set_limits(memory_bytes: int, cpu_s: int, file_bytes: int) -> None:
    for name, value in ((resource.RLIMIT_AS, memory_bytes), (resource.RLIMIT_FSIZE, file_bytes),
                        (resource.RLIMIT_CORE, 0)):
        resource.setrlimit(name, (value, value))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))  # SIGXCPU, then SIGKILL


def apply_landlock(root: str) -> int:
    """Restrict this process and its children for good; return the Landlock ABI used."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    abi = libc.syscall(SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    if abi < 1:
        raise OSError(ctypes.get_errno(), "Landlock is not available")
    fs = FS_WRITE | (FS_REFER if abi >= 2 else 0) | (FS_TRUNCATE if abi >= 3 else 0)
    net = NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 else 0
    scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0
    attr = struct.pack("=QQQ", fs, net, scoped)[:24 if abi >= 6 else 16 if abi >= 4 else 8]
    ruleset = libc.syscall(SYS_CREATE_RULESET, attr, ctypes.c_size_t(len(attr)), ctypes.c_uint32(0))
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    beneath = struct.pack("=Qi", fs, root_fd)
    if libc.syscall(SYS_ADD_RULE, ruleset, RULE_PATH_BENEATH, beneath, ctypes.c_uint32(0)) != 0:
        raise OSError(ctypes.get_errno(), "landlock_add_rule failed")
    os.close(root_fd)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    if libc.syscall(SYS_RESTRICT_SELF, ruleset, ctypes.c_uint32(0)) != 0:
        raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    os.close(ruleset)
    return int(abi)


def install_audit_hook(root: str) -> None:
    """Refuse writes outside `root` and everything in BLOCKED_EVENTS, from Python code."""
    getcwd, join, realpath, sep = os.getcwd, os.path.join, os.path.realpath, os.sep
    root = realpath(root)

    def inside(path: object, dir_fd: object = None) -> bool:
        if isinstance(path, int):
            return True  # an open descriptor: its opening was checked
        path = os.fsdecode(path)  # type: ignore[arg-type]
        if dir_fd is not None and not os.path.isabs(path):
            return False
        full = realpath(join(getcwd(), path))
        return full == root or full.startswith(root + sep)

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = args
            writes = any(c in mode for c in "wax+") if isinstance(mode, str) else bool(flags & WRITE_FLAGS)
            if writes and path is not None and not inside(path):
                raise PermissionError(f"sandbox: writing outside its directory is not allowed: {path}")
        elif event in PATH_EVENTS:
            for i in PATH_EVENTS[event]:
                if i < len(args) and not inside(args[i]):
                    raise PermissionError(f"sandbox: {event} outside its directory is not allowed")
        elif event.startswith(BLOCKED_EVENTS):
            raise PermissionError(f"sandbox: {event} is not allowed")

    sys.addaudithook(hook)


def main() -> None:
    root, memory, cpu, fsize, landlock, audit = sys.argv[1:7]
    try:
        set_limits(int(memory), int(cpu), int(fsize))
        if landlock == "1":
            apply_landlock(root)
        if audit == "1":
            install_audit_hook(root)
    except Exception as exc:  # noqa: BLE001 -- fail closed: never run the code half locked down
        print(f"sandbox: lockdown failed: {exc}", file=sys.stderr)
        sys.exit(3)
    sys.argv = ["main.py"]
    runpy.run_path(os.path.join(root, "main.py"), run_name="__main__")


if __name__ == "__main__":
    main()
