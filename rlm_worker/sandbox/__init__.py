"""The REPL sandbox: model-written Python under RestrictedPython, in a separate, capped process.

`process` is the worker's side (`SubprocessSandbox`, `SandboxConfig`, `make_sandbox_factory`);
`child` is the sandbox process; `policy` decides what the code may touch; `stubs` are the REPL API
names; `protocol` is the pipe between them. See docs/security.md for what this does and does not
guarantee.

The exports are loaded lazily so the sandbox process, which imports `rlm_worker.sandbox.child`,
does not pay for `subprocess` and the engine's types at start-up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rlm_worker.sandbox.process import SandboxConfig, SubprocessSandbox, make_sandbox_factory

__all__ = ["SandboxConfig", "SubprocessSandbox", "make_sandbox_factory"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from rlm_worker.sandbox import process

        return getattr(process, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
