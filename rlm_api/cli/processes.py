"""The distributed stack's processes: Celery workers per queue, Flower behind auth, health probes.

`rlm worker` and `rlm flower` replace themselves with the Celery command (exec), so signals from
a process manager reach Celery directly and nothing sits in between.
"""

from __future__ import annotations

import ipaddress
import os
import sys

import click

from rlm_shared.queues import LLM_QUEUE, ROOT_QUEUE

CELERY_APP = "rlm_worker.celery_app"
QUEUES = {"root": ROOT_QUEUE, "llm": LLM_QUEUE}
#: Root workers run agent loops (each with a sandbox subprocess); llm workers wait on HTTP.
DEFAULT_CONCURRENCY = {"root": ("ROOT_CONCURRENCY", 4), "llm": ("LLM_CONCURRENCY", 32)}


def celery_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", CELERY_APP, *args]


def worker_command(
    queue: str, concurrency: int, hostname: str, loglevel: str, extra: tuple[str, ...]
) -> list[str]:
    argv = celery_command(
        "worker",
        "-Q",
        QUEUES[queue],
        "-P",
        "threads",
        "-c",
        str(concurrency),
        "-n",
        hostname,
        "--loglevel",
        loglevel,
    )
    if queue == "root":
        argv += ["--prefetch-multiplier", "1"]
    return argv + list(extra)


def _exec(argv: list[str], env: dict[str, str] | None = None) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(argv[0], argv, dict(os.environ) if env is None else env)


@click.command("worker", context_settings={"ignore_unknown_options": True})
@click.argument("queue", type=click.Choice(sorted(QUEUES)))
@click.option(
    "-c", "--concurrency", type=int, help="Threads (default ROOT_CONCURRENCY=4 / LLM_CONCURRENCY=32)."
)
@click.option("-n", "--hostname", help="Worker name (default root@%h or llm@%h).")
@click.option("--loglevel", default="INFO", show_default=True)
@click.option("--print-command", is_flag=True, help="Print the Celery command instead of running it.")
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(
    queue: str,
    concurrency: int | None,
    hostname: str | None,
    loglevel: str,
    print_command: bool,
    celery_args: tuple[str, ...],
) -> None:
    """Start a Celery worker on the `rlm.root` or `rlm.llm` queue (threads pool).

    `root` runs agent loops (and their recursive children); `llm` runs leaf model calls, which
    are I/O-bound, so it wants many threads. Start as many of either, on as many hosts, as you
    like: they only need CELERY_BROKER_URL, CELERY_RESULT_BACKEND and DATABASE_URL. Arguments
    after the options go to `celery worker` unchanged.

    \b
    Examples:
      rlm worker root
      rlm worker llm --concurrency 64
      rlm worker llm -n llm-gpu-box@%h -- --max-tasks-per-child 1000
    """
    env_name, default = DEFAULT_CONCURRENCY[queue]
    threads = concurrency or int(os.environ.get(env_name) or default)
    argv = worker_command(queue, threads, hostname or f"{queue}@%h", loglevel, celery_args)
    if print_command:
        click.echo(" ".join(argv))
        return
    if queue == "root":
        _say_sandbox_isolation()
    _exec(argv)


def _say_sandbox_isolation() -> None:
    """A root worker runs REPL processes: say once which OS layers they get here, and refuse to
    start when SANDBOX_ISOLATION=required and one is missing (docs/security.md)."""
    from rlm_worker.sandbox.isolation import IsolationUnavailable
    from rlm_worker.services import check_sandbox_isolation

    try:
        plan = check_sandbox_isolation()
    except IsolationUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(plan.summary(), err=True)


#: Flower's basic auth has no rate limit and no lockout, and whoever gets in sees every task's
#: arguments and can shut workers down, so each password must resist online guessing by itself:
#: 16 characters, just over the 15 NIST SP 800-63B-4 asks of a password that is the only factor.
#: The README's `openssl rand -hex 12` gives 24.
MIN_FLOWER_PASSWORD_CHARS = 16


def _credentials_problem(value: str) -> str | None:
    """Why FLOWER_BASIC_AUTH cannot be used (never quoting a password), or None."""
    pairs = [p.strip() for p in value.split(",") if p.strip()]
    if not pairs or not all(":" in p and all(p.split(":", 1)) for p in pairs):
        return "FLOWER_BASIC_AUTH must look like user:password[,user2:password2]"
    for pair in pairs:
        user, password = pair.split(":", 1)
        if len(password) < MIN_FLOWER_PASSWORD_CHARS:
            return (
                f"FLOWER_BASIC_AUTH: the password of user {user!r} has only {len(password)} "
                f"character{'s' if len(password) != 1 else ''}; "
                f"use at least {MIN_FLOWER_PASSWORD_CHARS}, e.g. {user}:$(openssl rand -hex 12)"
            )
    return None


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"


@click.command("flower")
@click.option(
    "--port", default=5555, show_default=True, type=int, envvar="FLOWER_PORT", help="Env FLOWER_PORT."
)
@click.option("--address", help="Address to bind (default 0.0.0.0 with auth, 127.0.0.1 without).")
@click.option(
    "--basic-auth",
    envvar="FLOWER_BASIC_AUTH",
    help="user:password[,user2:password2] (env FLOWER_BASIC_AUTH; prefer the env, it stays out of `ps`).",
)
@click.option("--insecure-local", is_flag=True, help="No auth, bound to 127.0.0.1 only. For your laptop.")
def flower(port: int, address: str | None, basic_auth: str | None, insecure_local: bool) -> None:
    """Start Flower, the Celery monitor, on both queues. Refuses to start without credentials.

    Flower shows every task's arguments and can revoke tasks and shut workers down, so it never
    runs open: give FLOWER_BASIC_AUTH=user:password (passwords of 16 characters or more), or say
    --insecure-local to bind it to 127.0.0.1 without auth.

    \b
    Examples:
      FLOWER_BASIC_AUTH=admin:$(openssl rand -hex 12) rlm flower
      rlm flower --insecure-local --port 5556
    """
    env = dict(os.environ)
    if basic_auth:
        problem = _credentials_problem(basic_auth)
        if problem:
            raise click.UsageError(problem)
        env["FLOWER_BASIC_AUTH"] = basic_auth  # handed over in the environment, not in argv
        address = address or "0.0.0.0"
    elif insecure_local:
        address = address or "127.0.0.1"
        if not _is_loopback(address):
            raise click.UsageError("--insecure-local binds to a loopback address only")
    else:
        raise click.UsageError(
            "refusing to start Flower without credentials: set FLOWER_BASIC_AUTH=user:password "
            "(or --basic-auth), or pass --insecure-local to bind it to 127.0.0.1 without auth"
        )
    env.pop("FLOWER_UNAUTHENTICATED_API", None)
    _exec(celery_command("flower", f"--port={port}", f"--address={address}"), env)


@click.command("healthcheck")
@click.argument("url")
@click.option("--timeout", default=5.0, show_default=True, type=float)
def healthcheck(url: str, timeout: float) -> None:
    """Exit 0 when URL answers with a status below 500 (a container healthcheck).

    An auth-protected endpoint answering 401 is alive; a 503 or no answer is not.

    \b
    Examples:
      rlm healthcheck http://127.0.0.1:8000/api/health
      rlm healthcheck http://127.0.0.1:5555/healthcheck
    """
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError) as exc:
        click.echo(f"{url}: {exc}", err=True)
        sys.exit(1)
    click.echo(f"{url}: {status}")
    sys.exit(0 if status < 500 else 1)
