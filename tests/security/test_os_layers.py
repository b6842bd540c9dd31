"""The OS layers hold by themselves: code run in the REPL process with the language layer OFF.

`SubprocessSandbox(..., _language_layer=False)` runs cells as plain Python with the real builtins
(`import os, socket, ctypes` all work), as if RestrictedPython had been broken outright. That
switch is a keyword argument of the class only: the factory the product uses
(`make_sandbox_factory`) passes four arguments, and neither `SandboxConfig` nor `Settings` nor a
request has a field for it (checked below). What must still hold is what issue 30 asks of the OS:
no socket (TCP to this run's Redis and Postgres on loopback fails), no file of the project or of
the worker's environment, no other process, no new program, and another uid when the worker is
root. Each attempt reports what happened; the worker side checks the reports.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import os
import socket
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest

from rlm_shared.config import Settings
from rlm_worker.sandbox import SandboxConfig, SubprocessSandbox
from rlm_worker.sandbox.isolation import IsolationUnavailable, checked_plan, isolation_plan
from rlm_worker.sandbox.process import SubprocessSandboxFactory
from tests.security.conftest import SECRET, TEST_CONFIG, CountingHandler
from tests.support.services import PG_ADMIN_DSN

REPO = Path(__file__).resolve().parents[2]
PLAN = isolation_plan(TEST_CONFIG.isolation, TEST_CONFIG.sandbox_uid, TEST_CONFIG.sandbox_gid)
needs_layers = pytest.mark.skipif(
    bool(PLAN.missing),
    reason=f"this host lacks OS layers ({PLAN.summary()}); .ci/run installs bubblewrap and runs as root",
)


def _loopback_ports() -> dict[str, int]:
    """Servers that listen on loopback for this run: its private Redis and the shared Postgres."""
    ports = {"postgres": urlparse(PG_ADMIN_DSN).port or 5432}
    if os.environ.get("TEST_REDIS_PORT"):
        ports["redis"] = int(os.environ["TEST_REDIS_PORT"])
    return ports


def _tries(code: str) -> str:
    """A cell that runs `code` (which fills `out`) and prints `out` as JSON."""
    return "import json\nout = {}\n" + code + "\nprint(json.dumps(out))"


def _attempt(name: str, statement: str) -> str:
    """Cell lines recording `name`: "ok: <value>" if `statement` works, else the exception's name."""
    return (
        f"try:\n    out[{name!r}] = 'ok: ' + repr({statement})[:200]\n"
        f"except BaseException as exc:\n    out[{name!r}] = type(exc).__name__ + ': ' + str(exc)[:200]\n"
    )


@pytest.fixture()
def raw(worker_secrets):
    """A REPL process with the language layer off (the OS layers only)."""
    box = SubprocessSandbox("public context", {}, {}, TEST_CONFIG, _language_layer=False)
    yield box
    box.close()


def _run(box: SubprocessSandbox, code: str) -> dict[str, str]:
    result = box.execute(_tries(code), CountingHandler())
    assert result.error is None, result.error
    return json.loads(result.stdout)


def test_the_switch_really_turns_the_language_layer_off(raw):
    """Otherwise every test below would prove nothing: these imports and calls are refused by
    RestrictedPython, and here they work."""
    out = _run(raw, _attempt("os", "__import__('os').getpid()") + _attempt("open", "open('/dev/null').read()"))
    assert out["os"].startswith("ok") and out["open"] == "ok: ''"


@needs_layers
def test_no_socket_reaches_the_loopback_servers(raw):
    ports = _loopback_ports()
    for port in ports.values():  # from the worker, each answers
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    code = "import socket\n"
    code += _attempt("create", "socket.socket(socket.AF_INET, socket.SOCK_STREAM)")
    code += _attempt("unix", "socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)")
    code += _attempt("pair", "socket.socketpair()")
    for name, port in ports.items():
        code += _attempt(name, f"socket.create_connection(('127.0.0.1', {port}), timeout=2)")
    out = _run(raw, code)
    assert out["create"].startswith("PermissionError"), out
    assert out["unix"].startswith("PermissionError") and out["pair"].startswith("PermissionError"), out
    for name in ports:
        assert out[name].startswith("PermissionError"), (name, out[name])


@needs_layers
def test_no_file_of_the_project_or_the_worker_can_be_read(raw):
    worker = os.getpid()
    targets = {
        "worker_environ": f"/proc/{worker}/environ",
        "own_environ": "/proc/self/environ",
        "readme": str(REPO / "README.md"),
        "pyproject": str(REPO / "pyproject.toml"),
        "engine": str(REPO / "rlm_worker" / "engine" / "loop.py"),
        "shadow": "/etc/shadow",
        "passwd": "/etc/passwd",
        "home": os.path.expanduser("~/.bash_history"),
    }
    code = "import os\n"
    for name, path in targets.items():
        code += _attempt(name, f"open({path!r}, 'rb').read(64)")
    code += _attempt("root", "sorted(os.listdir('/'))")
    code += _attempt("code", "sorted(os.listdir('/rlm/rlm_worker'))")
    code += _attempt("engine_code", "sorted(os.listdir('/rlm/rlm_worker/engine'))")
    code += _attempt("write_code", "open('/rlm/rlm_worker/sandbox/policy.py', 'a')")
    code += _attempt("write_usr", "open('/usr/x', 'w')")
    code += _attempt("environ", "sorted(os.environ)")
    code += _attempt("write_shm", "open('/dev/shm/x', 'wb')")
    code += _attempt("fill_tmp", "[open(f'/tmp/f{i}', 'wb').write(b'x' * 400_000) for i in range(4)]")
    out = _run(raw, code)
    for name in targets:
        assert out[name].startswith(("FileNotFoundError", "PermissionError")), (name, out[name])
    root = eval(out["root"].removeprefix("ok: "))  # a repr of a list of str, written above
    assert set(root) <= {"bin", "dev", "lib", "lib32", "lib64", "libx32", "sbin", "usr", "tmp", "rlm", "root",
                         "work", "opt", "home", "srv"}, root
    assert "etc" not in root and "proc" not in root
    assert out["code"] == "ok: ['__init__.py', 'engine', 'sandbox']"  # the REPL's own code, nothing else
    assert out["engine_code"] == "ok: ['__init__.py', 'repl_names.py']"  # of the engine, only its names
    assert out["write_code"].startswith(("OSError", "PermissionError")), out["write_code"]
    assert out["write_usr"].startswith(("OSError", "PermissionError")), out["write_usr"]
    assert out["write_shm"].startswith("PermissionError"), out["write_shm"]
    assert out["fill_tmp"].startswith("OSError: [Errno 28]"), out["fill_tmp"]  # its /tmp holds 1 MiB
    # Only what bubblewrap (the working directory) and `python -X utf8` set.
    assert set(eval(out["environ"].removeprefix("ok: "))) <= {"PWD", "LC_CTYPE"}, out["environ"]
    assert SECRET not in json.dumps(out)


@needs_layers
def test_no_other_process_can_be_seen_or_signalled(raw):
    code = "import os\n"
    code += _attempt("proc", "os.listdir('/proc')")
    code += _attempt("kill_worker", f"os.kill({os.getpid()}, 0)")
    code += _attempt("pid", "os.getpid()")
    out = _run(raw, code)
    assert out["proc"].startswith("FileNotFoundError"), out["proc"]  # no /proc at all
    assert out["kill_worker"].startswith("ProcessLookupError"), out["kill_worker"]  # its own PID namespace
    assert out["pid"] == "ok: 2"  # bubblewrap's PID 1 and this REPL: nothing else exists


@needs_layers
def test_no_program_or_process_can_be_started(raw):
    code = "import os, subprocess, ctypes\n"
    code += _attempt("execv", "os.execv('/usr/bin/true', ['true'])")
    code += _attempt("subprocess", "subprocess.run(['/usr/bin/true'])")
    code += _attempt("fork", "os.fork()")
    code += "libc = ctypes.CDLL(None, use_errno=True)\n"
    code += _attempt("mount", "(libc.mount(b'none', b'/tmp', b'tmpfs', 0, None), ctypes.get_errno())")
    code += _attempt("ptrace", "(libc.ptrace(16, 1, 0, 0), ctypes.get_errno())")  # PTRACE_ATTACH to PID 1
    code += _attempt("unshare", "(libc.unshare(0x40000000), ctypes.get_errno())")  # CLONE_NEWNET
    out = _run(raw, code)
    for name in ("execv", "subprocess", "fork"):
        assert out[name].startswith("PermissionError"), (name, out[name])
    for name in ("mount", "ptrace", "unshare"):  # -1, and errno EPERM (1)
        assert out[name] == "ok: (-1, 1)", (name, out[name])


@needs_layers
def test_the_repl_runs_as_another_uid_with_no_new_privileges(raw):
    code = "import os\n"
    code += _attempt("ids", "(os.getresuid(), os.getresgid(), os.getgroups())")
    code += _attempt("setuid", "os.setuid(0)")
    code += _attempt("nnp", "open('/proc/self/status').read()")  # no /proc: checked through prctl
    code += _attempt("prctl", "__import__('ctypes').CDLL(None).prctl(39, 0, 0, 0, 0)")
    out = _run(raw, code)
    uid, gid = TEST_CONFIG.sandbox_uid, TEST_CONFIG.sandbox_gid
    assert out["ids"] == f"ok: (({uid}, {uid}, {uid}), ({gid}, {gid}, {gid}), [])", out["ids"]
    assert out["setuid"].startswith("PermissionError"), out["setuid"]
    assert out["prctl"] == "ok: 1"  # PR_GET_NO_NEW_PRIVS


@needs_layers
def test_the_language_layer_on_still_works_under_the_os_layers(factory):
    box = factory("ctx", {"kept": 1}, {})
    try:
        result = box.execute(
            "import statistics, json, re, random\nprint(statistics.mean([1, 2, 3]), json.dumps({'a': kept}), random.random() < 1)",
            CountingHandler(),
        )
        assert result.error is None, result.error
        assert result.stdout == '2 {"a": 1} True\n'
        assert box.jailed
    finally:
        box.close()


def test_no_setting_or_factory_reaches_the_switch():
    """Why the product cannot turn the language layer off: nothing it builds passes the argument."""
    assert not any("language" in f.name for f in dataclasses.fields(SandboxConfig))
    assert not any("language" in name for name in Settings.model_fields)
    assert "_language_layer" not in inspect.signature(SubprocessSandboxFactory.__call__).parameters
    source = inspect.getsource(SubprocessSandboxFactory.__call__)
    assert "SubprocessSandbox(context, variables, constants, self.config)" in source


def test_required_refuses_a_host_without_a_layer(monkeypatch, tmp_path, caplog):
    """No bubblewrap on PATH: `required` refuses (worker start and every sandbox); `auto` runs with
    the layers left and says which are missing, once."""
    monkeypatch.setenv("PATH", str(tmp_path))
    isolation_plan.cache_clear()
    try:
        with pytest.raises(IsolationUnavailable, match="network namespace .*bubblewrap"):
            checked_plan("required", 65534, 65534)
        config = dataclasses.replace(TEST_CONFIG, isolation="required")
        with pytest.raises(RuntimeError, match="SANDBOX_ISOLATION=required"):
            SubprocessSandbox("ctx", {}, {}, config)
        with caplog.at_level(logging.INFO, logger="rlm_worker.sandbox.isolation"):
            box = SubprocessSandbox("ctx", {}, {}, dataclasses.replace(TEST_CONFIG, isolation="auto"))
            try:
                assert not box.jailed
                assert box.execute("print(1 + 1)", CountingHandler()).stdout == "2\n"
            finally:
                box.close()
            SubprocessSandbox("ctx", {}, {}, dataclasses.replace(TEST_CONFIG, isolation="auto")).close()
        said = [r.getMessage() for r in caplog.records if "sandbox isolation" in r.getMessage()]
        assert len(said) == 1 and "OFF: network namespace" in said[0], said
    finally:
        isolation_plan.cache_clear()


def test_the_worker_refuses_to_start_when_required_and_a_layer_is_missing(tmp_path):
    """`rlm worker root` with SANDBOX_ISOLATION=required on a host without bubblewrap: exit 1, and
    the message names what is missing (Celery is never started)."""
    import subprocess

    env = {**os.environ, "PATH": str(tmp_path), "SANDBOX_ISOLATION": "required"}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "rlm"), "worker", "root"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert done.returncode == 1, done
    assert "SANDBOX_ISOLATION=required" in done.stderr and "bubblewrap" in done.stderr, done.stderr


def test_memory_caps_the_repls_alive_per_worker_process():
    settings = Settings(sandbox_memory_mb=2048, sandbox_memory_total_mb=8192, max_sandboxes_per_process=32)
    assert settings.sandboxes_per_process() == 4
    assert Settings(sandbox_memory_total_mb=100_000, max_sandboxes_per_process=3).sandboxes_per_process() == 3
    assert Settings(sandbox_memory_mb=4096, sandbox_memory_total_mb=1024).sandboxes_per_process() == 1


def test_rlm_config_shows_each_layer_here():
    from click.testing import CliRunner

    from rlm_api.cli.environment import config

    shown = CliRunner().invoke(config, [], terminal_width=200)
    assert shown.exit_code == 0, shown.output
    for layer in PLAN.layers:
        assert layer.name in shown.output
    assert "memory cap" in shown.output and "SANDBOX_ISOLATION=auto" in shown.output


def test_a_worker_says_at_start_which_layers_its_repls_get():
    """Celery's worker_ready: a worker consuming rlm.root states the layers; an llm worker does not."""
    from types import SimpleNamespace

    from celery import Celery

    from rlm_shared.queues import LLM_QUEUE, ROOT_QUEUE
    from rlm_worker.tasks import say_sandbox_isolation

    def worker_on(queue: str) -> SimpleNamespace:
        app = Celery("osjail-probe", set_as_current=False)
        app.amqp.queues.select([queue])
        return SimpleNamespace(app=app)  # the WorkController: only its app is read

    said = say_sandbox_isolation(worker_on(ROOT_QUEUE))
    assert said is not None and said.startswith("sandbox isolation (SANDBOX_ISOLATION=")
    assert say_sandbox_isolation(worker_on(LLM_QUEUE)) is None
