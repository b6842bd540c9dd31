"""A worker that dies mid-cell: starts a sandbox under `argv[1]`, runs `argv[2]`, then SIGKILLs itself.

Run by `test_temp_folders.py` as `python -m tests.security.dying_worker <tmpdir> <code>`; prints the
sandbox's pid first. The code "idle" runs no cell. A cell's calls block until the worker is gone.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import threading
import time

from rlm_worker.sandbox import SandboxConfig, SubprocessSandbox


def main() -> None:
    tempfile.tempdir = sys.argv[1]
    code = sys.argv[2]
    config = SandboxConfig(cell_cpu_seconds=1, execution_cpu_seconds=1, memory_bytes=256 * 1024**2)
    box = SubprocessSandbox("ctx", {}, {}, config)
    print(box.pid, flush=True)
    blocked = threading.Event()
    if code != "idle":
        threading.Thread(
            target=box.execute, args=(code, lambda fn, args: blocked.wait()), daemon=True
        ).start()
    time.sleep(0.5)  # the cell is under way
    os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    main()
