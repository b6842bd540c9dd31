"""Several hosts on one machine: network namespaces on a private bridge, each process in its own
mount namespace too, so the processes of a "host" share nothing with another host but what
travels over that network.

Layout (made by `HostNetwork`, removed by `close`): one namespace holds only a bridge (the
"switch"); every host is a namespace with one veth whose other end is plugged into the bridge,
and an address `10.233.0.N/24` that exists only inside that namespace. The machine's own
namespace gets no address, no route and no interface of this network, so nothing here can reach
it, and nothing outside can reach the hosts. Namespace names carry a random tag, so two runs at
once never meet. A process is started as

    ip netns exec <host> unshare --mount --propagation private sh -c 'mount -t tmpfs tmpfs /tmp …' …

so it also gets a private `/tmp` (and `/run/postgresql`): no Unix socket, temporary file or
liveness file of one host is seen by another. The code itself (the checkout and its venv) is
read from the same disk by every host, as the same image would be on a real fleet.

The harness itself talks to the hosts from a "client" host of its own: `Inside(host)` runs
callables on one thread that has joined that namespace (`setns`), so HTTP, Redis and Postgres
connections made there go over the bridge like a remote client's.

Needs root and iproute2 (`ip netns`); `unavailable()` says why not when they are missing.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

SUBNET = "10.233.0"
_CLONE_NEWNET = 0x40000000
_PRIVATE_DIRS = ("/tmp", "/run/postgresql")
T = TypeVar("T")


def unavailable() -> str | None:
    """Why hosts cannot be made here (None when they can)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "unshare", "runuser"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (iproute2 / util-linux)"
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


class Process:
    """A process on a host, in its own session (so a kill reaches everything it started), its
    output in a log file."""

    def __init__(self, host: Host, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.host, self.name = host, name
        self.log_path = log_dir / f"{host.name}-{name}.log"
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        mounts = " && ".join(f"mkdir -p {d} && mount -t tmpfs -o mode=1777 tmpfs {d}" for d in _PRIVATE_DIRS)
        wrapped = [
            "ip", "netns", "exec", host.namespace,
            "unshare", "--mount", "--propagation", "private", "--",
            "sh", "-c", f'{mounts} && exec "$@"', host.name, *argv,
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            wrapped, cwd=Path(__file__).resolve().parents[2], env=env, stdout=self._log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    @property
    def pid(self) -> int:
        return self.proc.pid

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.host.name}/{self.name} exited: {self.log_text()[-3000:]}")

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def terminate(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL to the whole session: no warm shutdown, nothing acknowledged."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()

    def stop(self, grace: float = 15) -> None:
        self.terminate()
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.kill()
        self._log.close()


class Host:
    """One simulated machine: a network namespace with one address on the bridge."""

    def __init__(self, network: HostNetwork, name: str, address: str, namespace: str) -> None:
        self.network, self.name, self.address, self.namespace = network, name, address, namespace
        self.processes: list[Process] = []

    def spawn(self, name: str, argv: list[str], env: dict[str, str]) -> Process:
        proc = Process(self, name, argv, env, self.network.log_dir)
        self.processes.append(proc)
        return proc

    def run(self, argv: list[str], env: dict[str, str], timeout: float = 300) -> str:
        """Run a command on this host to its end; its output, or an error carrying it."""
        proc = self.spawn(Path(argv[0]).name + f"-{len(self.processes)}", argv, env)
        try:
            code = proc.proc.wait(timeout=timeout)
        finally:
            proc.stop()
        if code != 0:
            raise RuntimeError(f"{argv} on {self.name} exited {code}: {proc.log_text()[-3000:]}")
        return proc.log_text()

    def pids(self) -> list[int]:
        """Every process still running in this host's network namespace."""
        out = subprocess.run(
            ["ip", "netns", "pids", self.namespace], capture_output=True, text=True, timeout=30
        ).stdout
        return [int(p) for p in out.split()]

    def kill_everything(self) -> None:
        for proc in self.processes:
            if proc.proc.poll() is None:
                proc.kill()
        for pid in self.pids():  # anything that left its session (none should)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


class HostNetwork:
    """The bridge and the hosts on it; `close()` kills every process on them and removes them."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.tag = secrets.token_hex(3)
        self.switch = f"rlm{self.tag}-switch"
        self.hosts: dict[str, Host] = {}
        self._next_address = 2
        _ip("netns", "add", self.switch)
        _ip("-n", self.switch, "link", "set", "lo", "up")
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")

    def add_host(self, name: str) -> Host:
        number = self._next_address
        self._next_address += 1
        namespace = f"rlm{self.tag}-{name}"
        address = f"{SUBNET}.{number}"
        _ip("netns", "add", namespace)
        # Both ends are made inside their namespaces: no interface appears in the machine's own.
        _ip("link", "add", "eth0", "netns", namespace, "type", "veth", "peer", "name", f"port{number}",
            "netns", self.switch)  # fmt: skip
        _ip("-n", self.switch, "link", "set", f"port{number}", "master", "br0", "up")
        _ip("-n", namespace, "addr", "add", f"{address}/24", "dev", "eth0")
        _ip("-n", namespace, "link", "set", "eth0", "up")
        _ip("-n", namespace, "link", "set", "lo", "up")
        host = Host(self, name, address, namespace)
        self.hosts[name] = host
        return host

    def remove_host(self, name: str) -> None:
        """The host is gone: every process on it killed, its namespace (and its link) deleted."""
        host = self.hosts.pop(name)
        host.kill_everything()
        for proc in host.processes:
            proc.stop(grace=0)
        _ip("netns", "del", host.namespace)

    def close(self) -> None:
        for name in list(self.hosts):
            try:
                self.remove_host(name)
            except subprocess.CalledProcessError:
                pass
        subprocess.run(["ip", "netns", "del", self.switch], capture_output=True, timeout=30)


def _join_namespace(namespace: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
    try:
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {namespace} failed")
    finally:
        os.close(fd)


class Inside:
    """Runs callables on one thread that joined `host`'s network namespace (network namespaces
    are per thread): the connections they open are that host's. The rest of the process stays
    where it was."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self._pool = ThreadPoolExecutor(1, initializer=self._enter, initargs=(host.namespace,))
        self._thread: threading.Thread | None = None

    def _enter(self, namespace: str) -> None:
        _join_namespace(namespace)
        self._thread = threading.current_thread()

    def __call__(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if threading.current_thread() is self._thread:  # already inside (a call made by a callable)
            return fn(*args, **kwargs)
        return self._pool.submit(fn, *args, **kwargs).result()

    def wait_for(
        self, condition: Callable[[], Any], timeout: float, interval: float = 0.2, what: str = ""
    ) -> Any:
        """Poll `condition` inside the namespace until it is truthy (errors count as not yet)."""
        deadline = time.monotonic() + timeout
        last: BaseException | None = None
        while time.monotonic() < deadline:
            try:
                value = self(condition)
            except Exception as exc:
                last = exc
            else:
                if value:
                    return value
            time.sleep(interval)
        raise TimeoutError(f"timed out after {timeout} s waiting for {what}" + (f": {last}" if last else ""))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
