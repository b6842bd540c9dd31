"""A private redis-server for one test session, so concurrent sessions never share queues.

Started before anything reads TEST_REDIS_PORT; stopped when the interpreter exits. Set
TEST_REDIS_PORT yourself to use an existing server instead. Under pytest-xdist every worker
process starts its own (the suites use fixed database numbers, so two workers sharing one server
would flush each other's queues); a port inherited from the controller is not reused.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import time


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: Which process started the server TEST_REDIS_PORT names ("" for the controller or a plain run).
_OWNER = "RLM_TEST_REDIS_OWNER"


def ensure_private_redis() -> None:
    me = os.environ.get("PYTEST_XDIST_WORKER", "")
    inherited = _OWNER in os.environ and os.environ[_OWNER] != me
    if (os.environ.get("TEST_REDIS_PORT") and not inherited) or not shutil.which("redis-server"):
        return
    port = _free_port()
    workdir = tempfile.mkdtemp(prefix="rlm-test-redis-")
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", workdir, "--databases", "32"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    break
        except OSError:
            time.sleep(0.02)
    else:
        proc.kill()
        raise RuntimeError("the private redis-server for the tests did not start")
    os.environ["TEST_REDIS_PORT"] = str(port)
    os.environ[_OWNER] = me

    def stop() -> None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)

    atexit.register(stop)
