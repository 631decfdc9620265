"""First code of a sandboxed process: lock it down, then run `main.py` from its directory.

Started by `sandbox.run_python` as `python -I -B sandbox_child.py <dir> <memory_bytes> <cpu_s>
<file_bytes> <nproc> <pidns 0/1> <landlock 0/1> <seccomp 0/1> <audit 0/1>`, with `<dir>` (a fresh temporary
directory) as its working directory. Standard library only: it runs before anything else is imported. In order:

1. resource limits: address space, CPU seconds, size of a written file, no core dumps, and (where
   `<nproc>` > 0) the number of processes and threads; then, where `unshare --pid` started it, a fork:
   the child, first process of the new PID namespace, goes on; the parent only waits and exits as it did;
2. Landlock (Linux >= 5.13): the kernel refuses reads outside `<dir>`, Python's own library folders
   and the shared libraries; writes outside `<dir>`; running any program; TCP connect/bind (ABI >= 4);
   signals to processes outside the sandbox (ABI >= 6);
3. a seccomp filter (`seccomp.py`): no fork, exec or leaving the process group; threads still work;
4. an audit hook (PEP 578) that refuses the same writes, sockets, new processes, signals, rlimit
   changes and ctypes. Code can switch it off (it is Python), so it is only a second line behind 2 and 3,
   and the only one where they are missing.

Exit status 3 means the lockdown itself failed; the code was not run.
"""

import ctypes
import importlib.util
import os
import resource
import runpy
import signal
import struct
import sys
import types

# Landlock ABI constants (linux/landlock.h); syscall numbers are the same on x86_64 and arm64.
SYS_CREATE_RULESET, SYS_ADD_RULE, SYS_RESTRICT_SELF = 444, 445, 446
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
RULE_PATH_BENEATH = 1
FS_EXECUTE, FS_WRITE_FILE, FS_READ_FILE, FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
FS_WRITE = FS_WRITE_FILE | (1 << 4) | (1 << 5) | sum(1 << b for b in range(6, 13))  # write, remove, make*
FS_READ = FS_READ_FILE | FS_READ_DIR
FS_REFER, FS_TRUNCATE = 1 << 13, 1 << 14
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1
# Shared libraries that extension modules load after the lockdown. /etc is deliberately absent: without
# /etc/ld.so.cache the loader searches its built-in directories, which are these.
LIBRARY_DIRS = ("/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/local/lib")
DEVICES = {"/dev/null": FS_READ_FILE | FS_WRITE_FILE, "/dev/zero": FS_READ_FILE, "/dev/urandom": FS_READ_FILE,
           "/dev/random": FS_READ_FILE}

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
BLOCKED_EVENTS = ("socket.", "subprocess.", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
                  "os.fork", "os.forkpty", "os.kill", "os.killpg", "pty.", "ctypes.", "resource.",
                  "os.chroot", "winreg.", "webbrowser.")
PATH_EVENTS = {"os.mkdir": (0,), "os.rmdir": (0,), "os.remove": (0,), "os.rename": (0, 1),
               "os.link": (0, 1), "os.symlink": (1,), "os.truncate": (0,), "os.chmod": (0,),
               "os.chown": (0,), "os.chflags": (0,), "os.lchflags": (0,), "os.utime": (0,),
               "os.mkfifo": (0,), "os.mknod": (0,), "shutil.rmtree": (0,), "os.setxattr": (0,),
               "os.removexattr": (0,)}


def set_limits(memory_bytes: int, cpu_s: int, file_bytes: int, nproc: int) -> None:
    for name, value in ((resource.RLIMIT_AS, memory_bytes), (resource.RLIMIT_FSIZE, file_bytes),
                        (resource.RLIMIT_CORE, 0)):
        resource.setrlimit(name, (value, value))
    # SIGXCPU, then SIGKILL; a PID namespace's first process ignores SIGXCPU, so there it is SIGKILL at cpu_s + 1.
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
    if nproc > 0:
        # Counted per user; the parent asks for it only inside a new user namespace, where the count is this
        # sandbox's own. The kernel does not enforce it for real root (uid 0 outside every namespace).
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))


def readable_dirs() -> list[str]:
    """Python's own library folders (stdlib, lib-dynload, site-packages) and the shared libraries.

    Only `sys.path` entries under Python's prefixes: a .pth file may add the project's own checkout,
    which the code has no business reading.
    """
    prefixes = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)}
    python = [os.path.realpath(p) for p in sys.path if os.path.isdir(p)]
    python = [p for p in python if any(p == q or p.startswith(q + os.sep) for q in prefixes)]
    return sorted({os.path.realpath(p) for p in (*python, *LIBRARY_DIRS) if os.path.isdir(p)})


def apply_landlock(root: str) -> int:
    """Restrict this process and its children for good; return the Landlock ABI used.

    No rule grants EXECUTE, so no program can be run even where seccomp is missing (shared libraries are
    mapped, not executed, and need only READ_FILE).
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    abi = libc.syscall(SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    if abi < 1:
        raise OSError(ctypes.get_errno(), "Landlock is not available")
    fs = FS_EXECUTE | FS_READ | FS_WRITE | (FS_REFER if abi >= 2 else 0) | (FS_TRUNCATE if abi >= 3 else 0)
    net = NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 else 0
    scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0
    attr = struct.pack("=QQQ", fs, net, scoped)[:24 if abi >= 6 else 16 if abi >= 4 else 8]
    ruleset = libc.syscall(SYS_CREATE_RULESET, attr, ctypes.c_size_t(len(attr)), ctypes.c_uint32(0))
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
    rules = {root: fs & ~FS_EXECUTE, **{d: FS_READ for d in readable_dirs()},
             **{d: access for d, access in DEVICES.items() if os.path.exists(d)}}
    for path, access in rules.items():
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        try:
            beneath = struct.pack("=Qi", access, fd)
            if libc.syscall(SYS_ADD_RULE, ruleset, RULE_PATH_BENEATH, beneath, ctypes.c_uint32(0)) != 0:
                raise OSError(ctypes.get_errno(), f"landlock_add_rule failed for {path}")
        finally:
            os.close(fd)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    if libc.syscall(SYS_RESTRICT_SELF, ruleset, ctypes.c_uint32(0)) != 0:
        raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    os.close(ruleset)
    return int(abi)


def become_pid_namespace_init() -> None:
    """Fork; return in the child, the first process of the PID namespace `unshare --pid` made for our children.

    When that child ends, the kernel kills every process left in the namespace. The parent stays outside,
    where the code cannot see it, waits, and ends the way the child did: `unshare --fork` would do this
    too, but exits 1 instead of passing on a SIGKILL (util-linux 2.38), which hides a CPU limit.
    """
    pid = os.fork()
    if pid == 0:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:  # die with the parent, however it ends
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        return
    status = os.waitpid(pid, 0)[1]
    if os.WIFSIGNALED(status):
        if os.WTERMSIG(status) != signal.SIGKILL:
            signal.signal(os.WTERMSIG(status), signal.SIG_DFL)
        os.kill(os.getpid(), os.WTERMSIG(status))
    os._exit(os.waitstatus_to_exitcode(status))


def load_seccomp() -> types.ModuleType:
    """`seccomp.py`, loaded by path: `-I` keeps this folder off sys.path."""
    spec = importlib.util.spec_from_file_location("sandbox_seccomp", os.path.join(os.path.dirname(__file__),
                                                                                "seccomp.py"))
    assert spec is not None and spec.loader is not None, "seccomp.py is missing beside sandbox_child.py"
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
            if writes and path is not None and path != os.devnull and not inside(path):
                raise PermissionError(f"sandbox: writing outside its directory is not allowed: {path}")
        elif event in PATH_EVENTS:
            for i in PATH_EVENTS[event]:
                if i < len(args) and not inside(args[i]):
                    raise PermissionError(f"sandbox: {event} outside its directory is not allowed")
        elif event.startswith(BLOCKED_EVENTS):
            raise PermissionError(f"sandbox: {event} is not allowed")

    sys.addaudithook(hook)


def main() -> None:
    root, memory, cpu, fsize, nproc, pidns, landlock, seccomp, audit = sys.argv[1:10]
    try:
        seccomp_module = load_seccomp() if seccomp == "1" else None  # read it before Landlock hides it
        set_limits(int(memory), int(cpu), int(fsize), int(nproc))
        if pidns == "1":
            become_pid_namespace_init()
        if landlock == "1":
            apply_landlock(root)
        if seccomp_module is not None:
            seccomp_module.install()
        if audit == "1":
            install_audit_hook(root)
    except Exception as exc:  # noqa: BLE001 -- fail closed: never run the code half locked down
        print(f"sandbox: lockdown failed: {exc}", file=sys.stderr)
        sys.exit(3)
    sys.argv = ["main.py"]
    runpy.run_path(os.path.join(root, "main.py"), run_name="__main__")


if __name__ == "__main__":
    main()
