"""The REPL process confines itself before it reads any code: uid, no_new_privs, seccomp.

Why in the REPL and not in the command that starts it: the filter refuses `execve`, so it can only
be loaded once the interpreter runs; and a uid is best dropped by the process that then keeps it.
The filter is compiled by the worker (`isolation.build_seccomp_filter`, libseccomp) and arrives
as bytes; loading it needs only `prctl`, through ctypes (this module never imports libseccomp).
Each step raises on failure: a REPL that was meant to be confined and is not must not run code.
"""

from __future__ import annotations

import ctypes  # imported before the uid changes: the new uid may not reach the stdlib
import os

PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2


class ConfinementFailed(RuntimeError):
    """A layer the worker asked for could not be applied."""


def drop_user(uid: int, gid: int) -> None:
    """From root to `uid`/`gid` with no supplementary groups: every capability goes with it."""
    if os.geteuid() != 0:
        raise ConfinementFailed("cannot change uid: the REPL process is not root")
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (gid, gid, gid) or os.getgroups():
        raise ConfinementFailed("the uid change did not take")


def _libc():  # type: ignore[no-untyped-def]
    return ctypes, ctypes.CDLL(None, use_errno=True)


def no_new_privs() -> None:
    """No exec (were one allowed) can gain privileges again (set-uid files, file capabilities)."""
    ctypes, libc = _libc()
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 or libc.prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1:
        raise ConfinementFailed(f"prctl(PR_SET_NO_NEW_PRIVS) failed: errno {ctypes.get_errno()}")


def load_seccomp(program: bytes) -> None:
    """Install a classic BPF seccomp filter (8-byte instructions) on this process."""
    if not program or len(program) % 8:
        raise ConfinementFailed("the seccomp program is empty or malformed")
    ctypes, libc = _libc()

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = SockFprog(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        raise ConfinementFailed(f"loading the seccomp filter failed: errno {ctypes.get_errno()}")


def confine(config: dict) -> None:
    """Apply what the worker's start configuration asks for, in order: uid, no_new_privs, seccomp."""
    drop = config.get("drop_to")
    if drop is not None:
        drop_user(int(drop[0]), int(drop[1]))
    if config.get("no_new_privs"):
        no_new_privs()
    program = config.get("seccomp_bpf")
    if program:
        load_seccomp(bytes.fromhex(program))
