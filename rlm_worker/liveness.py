"""A worker's liveness file: touched every few seconds while its consumer takes tasks.

Kubernetes probes (deploy/k8s) check the file's age with `find`, which costs nothing, where
`celery inspect ping` started Python and the whole app every time (~5 s of CPU a probe here).
The step runs in Celery's consumer, so the file stops being touched when the consumer stops: a
lost broker connection (the consumer restarts, and the file is removed until it reconnects), a
warm shutdown, or an event loop that no longer turns. The worker's pool threads may all be busy:
that is work, not a hang, and the file stays fresh.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Any

from celery import bootsteps

#: How often the file is touched; the probes allow a minute.
TOUCH_EVERY_SECONDS = 10.0


def alive_path(worker_name: str) -> Path:
    """`rlm worker root` is named root@<host>, so a pod's file is /tmp/rlm-worker-root@$HOSTNAME.alive."""
    return Path(tempfile.gettempdir()) / f"rlm-worker-{worker_name}.alive"


class AliveFile(bootsteps.StartStopStep):
    """Consumer step: touch `alive_path(worker name)` while consuming, remove it when stopped."""

    requires = {"celery.worker.consumer.tasks:Tasks"}

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.path: Path | None = None
        self.timer_ref: Any = None

    def start(self, parent: Any) -> None:
        self.path = alive_path(parent.hostname)
        self.touch()
        self.timer_ref = parent.timer.call_repeatedly(TOUCH_EVERY_SECONDS, self.touch)

    def touch(self) -> None:
        if self.path is not None:
            self.path.touch()

    def stop(self, parent: Any) -> None:
        if self.timer_ref is not None:
            self.timer_ref.cancel()
            self.timer_ref = None
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    def shutdown(self, parent: Any) -> None:
        self.stop(parent)
