"""The OS layers under the REPL process: which ones this host gives, and the command that applies them.

Why: RestrictedPython (`policy.py`) is one layer, and two bypasses of it in two review passes
showed it cannot be the only one. Under it, each REPL process gets, where the host allows:

- **namespaces** (bubblewrap): its own network namespace (no network: a loopback with nothing
  listening), its own mount namespace (a fresh root holding read-only `/usr`, the interpreter and
  only the files the REPL imports, an empty 1 MiB `/tmp`, no `/proc`, no `/etc`), its own PID, IPC
  and UTS namespaces; it dies with the worker (`--die-with-parent`);
- **a separate uid**: when the worker is root, the REPL drops to `SANDBOX_UID`/`SANDBOX_GID` with
  no supplementary groups before it reads any code (a uid that owns nothing of the worker's);
- **seccomp + no_new_privs**: a filter, built here once with libseccomp (pyseccomp, a ctypes
  binding) and loaded by the REPL itself after start-up, refuses sockets, `execve`, `fork`,
  `ptrace`, `mount`, namespace and module syscalls and the like (`confine.py`);
- **memory**: `RLIMIT_AS` per process (always), and a cap on the REPL processes of a worker
  process (`services.process_sandboxes`).

`SANDBOX_ISOLATION` chooses: `required` (the worker refuses to start unless every layer is on),
`auto` (each layer the host gives; the worker logs the missing ones once), `off` (language layer
and rlimits only). `rlm config` shows each layer's state here.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path

log = logging.getLogger(__name__)

MODES = ("required", "auto", "off")
#: Where the REPL's own code appears inside the mount namespace (the only project files it sees).
CODE_ROOT = "/rlm"
TMP_BYTES = 1024 * 1024

#: Syscalls the REPL never needs once it runs: refused with EPERM (the cell sees an OSError).
DENIED_SYSCALLS = (
    # network: the pipe to the worker is already open; nothing else may be opened
    "socket", "socketpair",
    # new programs and processes
    "execve", "execveat", "fork", "vfork",
    # other processes
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_open", "pidfd_getfd",
    # the file system tree and namespaces
    "mount", "umount2", "pivot_root", "chroot", "unshare", "setns", "open_tree", "move_mount",
    "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr", "open_by_handle_at",
    "name_to_handle_at", "mknod", "mknodat",
    # identity (dropped before the filter is loaded; never regained)
    "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setgroups",
    "setfsuid", "setfsgid", "capset",
    # the kernel's own surfaces
    "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter",
    "io_uring_register", "keyctl", "add_key", "request_key", "init_module", "finit_module",
    "delete_module", "kexec_load", "kexec_file_load", "reboot", "swapon", "swapoff", "acct",
    "syslog", "sethostname", "setdomainname", "settimeofday", "clock_settime", "clock_adjtime",
    "adjtimex", "quotactl", "personality", "iopl", "ioperm", "vhangup", "fanotify_init",
    "lookup_dcookie", "uselib",
)  # fmt: skip
#: Every namespace but the user one (`--unshare-all` would make root's REPL root of a user
#: namespace of its own, where no other uid exists to drop to); an ordinary user adds it below.
_UNSHARE = ("--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try")
_CLONE_THREAD = 0x00010000
_CLONE_NAMESPACES = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000)


@dataclass(frozen=True)
class Layer:
    name: str
    active: bool
    detail: str

    def line(self) -> str:
        return f"{self.name}: {'on' if self.active else 'OFF'} ({self.detail})"


@dataclass(frozen=True)
class IsolationPlan:
    """What a REPL process of this worker gets; built once per process by `isolation_plan`."""

    mode: str
    bwrap: str | None  # the bubblewrap executable, when the namespaces are on
    drop_to: tuple[int, int] | None  # (uid, gid) the REPL takes when the worker is root
    seccomp_bpf: bytes | None  # the compiled filter the REPL loads
    layers: tuple[Layer, ...]

    @property
    def no_new_privs(self) -> bool:
        return any(layer.name == "no_new_privs" and layer.active for layer in self.layers)

    @property
    def missing(self) -> list[Layer]:
        return [layer for layer in self.layers if not layer.active]

    def summary(self) -> str:
        on = ", ".join(layer.name for layer in self.layers if layer.active) or "none"
        text = f"sandbox isolation (SANDBOX_ISOLATION={self.mode}): on: {on}"
        if self.missing:
            text += "; OFF: " + "; ".join(f"{layer.name} ({layer.detail})" for layer in self.missing)
        return text


class IsolationUnavailable(RuntimeError):
    """SANDBOX_ISOLATION=required, and this host cannot give every layer."""


def build_seccomp_filter() -> bytes:
    """The filter as a classic BPF program (libseccomp checks the architecture: a syscall of another
    ABI, such as i386's `int 0x80`, kills the process)."""
    import pyseccomp

    deny = pyseccomp.ERRNO(errno.EPERM)
    rules = pyseccomp.SyscallFilter(pyseccomp.ALLOW)
    for name in DENIED_SYSCALLS:
        try:
            rules.add_rule(deny, name)
        except (OSError, ValueError, RuntimeError):  # not a syscall of this architecture
            continue
    # clone: threads only (no process), and never into a new namespace. clone3 passes its flags in
    # memory a filter cannot read: ENOSYS makes the C library fall back to clone.
    rules.add_rule(deny, "clone", pyseccomp.Arg(0, pyseccomp.MASKED_EQ, _CLONE_THREAD, 0))
    for flag in _CLONE_NAMESPACES:
        rules.add_rule(deny, "clone", pyseccomp.Arg(0, pyseccomp.MASKED_EQ, flag, flag))
    rules.add_rule(pyseccomp.ERRNO(errno.ENOSYS), "clone3")
    with tempfile.TemporaryFile() as handle:
        rules.export_bpf(handle)
        handle.seek(0)
        return handle.read()


def code_mounts() -> list[tuple[str, str]]:
    """(host path, path in the sandbox) of the only project files the REPL imports: the package
    marker of `rlm_worker`, the `sandbox` package, the engine's list of the REPL's own names
    (`engine/repl_names.py`, which must not import anything of ours) and RestrictedPython."""
    package = Path(__file__).resolve().parent
    mounts = [
        (str(package.parent / "__init__.py"), f"{CODE_ROOT}/rlm_worker/__init__.py"),
        (str(package), f"{CODE_ROOT}/rlm_worker/sandbox"),
    ]
    engine = package.parent / "engine"
    for name in ("__init__.py", "repl_names.py"):
        mounts.append((str(engine / name), f"{CODE_ROOT}/rlm_worker/engine/{name}"))
    spec = find_spec("RestrictedPython")
    if spec is not None and spec.origin:
        mounts.append((str(Path(spec.origin).resolve().parent), f"{CODE_ROOT}/RestrictedPython"))
    return mounts


def _system_binds() -> list[str]:
    """`/usr` read-only, and the top-level links into it (`/lib`, `/bin`) as the host has them."""
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("lib", "lib32", "lib64", "libx32", "bin", "sbin"):
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    return args


def interpreter_paths(python: str) -> tuple[str, list[str]]:
    """(what to run inside, host paths to bind read-only for it).

    The product runs `sys.executable`: inside, its real file (a venv's python is a link to it),
    with the installation it belongs to (`sys.base_prefix`), unless that is under `/usr` already.
    A different `python_executable` (tests use wrapper scripts) is bound as it is, with this
    Python's environment, so it can start this interpreter.
    """
    binds: list[str] = []
    base = os.path.realpath(sys.base_prefix)
    if base != "/usr" and not base.startswith("/usr/"):
        binds.append(base)
    if os.path.abspath(python) == os.path.abspath(sys.executable):
        return os.path.realpath(python), binds
    binds += [os.path.realpath(python), os.path.realpath(sys.prefix)]
    return os.path.abspath(python), binds


def _parent_dirs(targets: list[str]) -> list[str]:
    """Make the folders above each mount point readable by the REPL's uid (bubblewrap would make
    them mode 0700, root's: a REPL that left root could not reach its own interpreter)."""
    made: list[str] = []
    for target in targets:
        for parent in reversed(Path(target).parents):
            name = str(parent)
            if name != "/" and name not in made and not name.startswith("/usr"):
                made.append(name)
    args: list[str] = []
    for name in made:
        args += ["--perms", "0755", "--dir", name]
    return args


def bwrap_argv(bwrap: str, python: str, info_fd: int | None = None) -> tuple[list[str], str]:
    """The bubblewrap command line that runs `python` (argv[0] then follows); and that path."""
    inside, binds = interpreter_paths(python)
    # No --as-pid-1: bubblewrap's own PID 1 stays as the REPL's parent, and when it ends (bubblewrap
    # or the worker killed) the kernel kills everything in the namespace; a REPL that was PID 1
    # itself outlived a killed bubblewrap.
    argv = [bwrap, *_UNSHARE, "--die-with-parent"]
    if os.geteuid() != 0:  # an ordinary user needs a user namespace; the REPL may not make another
        argv += ["--unshare-user", "--disable-userns"]
    else:  # bubblewrap drops root's capabilities but these two, which the REPL uses once to leave root
        argv += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    if info_fd is not None:
        argv += ["--info-fd", str(info_fd)]
    argv += _system_binds()
    argv += ["--dev", "/dev", "--size", str(TMP_BYTES), "--perms", "0777", "--tmpfs", "/tmp"]
    mounts = [(path, path) for path in binds] + code_mounts()
    argv += _parent_dirs([target for _source, target in mounts])
    for source, target in mounts:
        argv += ["--ro-bind", source, target]
    argv += ["--chdir", "/tmp", "--"]
    return argv, inside


def _probe_namespaces(bwrap: str | None, python: str, drop_to: tuple[int, int] | None) -> str | None:
    """None if bubblewrap starts this interpreter in its namespaces here, and (as root) the REPL's
    uid can still import the sandbox and the standard library there; else why not."""
    if bwrap is None:
        return "bubblewrap (bwrap) is not installed"
    argv, inside = bwrap_argv(bwrap, python)
    probe = (
        f"import sys; sys.path[:0] = [{CODE_ROOT!r}]; from rlm_worker.sandbox import confine; "
        f"{f'confine.drop_user{drop_to}; ' if drop_to else ''}import statistics, RestrictedPython"
    )
    try:
        done = subprocess.run(
            [*argv, inside, "-I", "-S", "-c", probe],
            env={},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=20,
            cwd="/",
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"bubblewrap could not run: {exc}"
    if done.returncode != 0:
        reason = (done.stderr.decode("utf-8", "replace").strip().splitlines() or ["no message"])[-1]
        return f"bubblewrap failed here: {reason[:200]}"
    return None


def _kernel_has_seccomp() -> bool:
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as handle:
            return any(line.startswith("Seccomp:") for line in handle)
    except OSError:
        return False


def _seccomp_filter() -> tuple[bytes | None, str]:
    if not sys.platform.startswith("linux") or not _kernel_has_seccomp():
        return None, "the kernel has no seccomp"
    try:
        bpf = build_seccomp_filter()
    except (ImportError, RuntimeError, OSError) as exc:
        return None, f"libseccomp is not usable: {exc}"
    return bpf, f"{len(DENIED_SYSCALLS)} syscalls refused, clone only for threads"


@lru_cache(maxsize=8)
def isolation_plan(mode: str = "auto", uid: int = 65534, gid: int = 65534) -> IsolationPlan:
    """Probe this host once per process (per arguments): which layers a REPL process gets."""
    if mode not in MODES:
        raise ValueError(f"SANDBOX_ISOLATION must be one of {', '.join(MODES)}, not {mode!r}")
    language = Layer("language (RestrictedPython)", True, "always")
    if mode == "off":
        off = "SANDBOX_ISOLATION=off"
        layers = [language] + [Layer(n, False, off) for n in _OS_LAYER_NAMES]
        return IsolationPlan(mode, None, None, None, tuple(layers))
    bwrap = shutil.which("bwrap")
    root = os.geteuid() == 0
    why_not = _probe_namespaces(bwrap, sys.executable, (uid, gid) if root else None)
    jailed = why_not is None
    ns_detail = why_not or ""
    bpf, seccomp_detail = _seccomp_filter()
    layers = [
        language,
        Layer("network namespace", jailed, ns_detail or "no network: a loopback with nothing listening"),
        Layer(
            "mount namespace",
            jailed,
            ns_detail or f"read-only /usr, interpreter and REPL code; empty {TMP_BYTES // 1024} KiB /tmp; no /proc",
        ),
        Layer("pid namespace", jailed, ns_detail or "sees only itself"),
        Layer(
            "separate uid",
            root,
            f"uid {uid}, gid {gid}, no groups" if root else "the worker is not root: the REPL keeps its uid",
        ),
        Layer("seccomp", bpf is not None, seccomp_detail),
        Layer("no_new_privs", sys.platform.startswith("linux"), "set by the REPL before it reads code"),
    ]
    plan = IsolationPlan(
        mode, bwrap if jailed else None, (uid, gid) if root else None, bpf, tuple(layers)
    )
    return plan


_OS_LAYER_NAMES = (
    "network namespace",
    "mount namespace",
    "pid namespace",
    "separate uid",
    "seccomp",
    "no_new_privs",
)


def checked_plan(mode: str, uid: int, gid: int) -> IsolationPlan:
    """The plan, logged once; IsolationUnavailable if `required` and a layer is missing."""
    plan = isolation_plan(mode, uid, gid)
    if mode == "required" and plan.missing:
        raise IsolationUnavailable(
            "SANDBOX_ISOLATION=required, but this host lacks: "
            + "; ".join(f"{layer.name} ({layer.detail})" for layer in plan.missing)
        )
    _log_once(plan)
    return plan


_logged: set[str] = set()


def _log_once(plan: IsolationPlan) -> None:
    text = plan.summary()
    if text in _logged:
        return
    _logged.add(text)
    (log.warning if plan.missing else log.info)("%s", text)
