"""Would the newest versions pyproject's ranges allow be an upgrade? Measure before bumping the lock.

`python -m bench.upgrade_check [--quick] [--keep]`

1. resolves the newest versions the ranges allow (the same `uv pip compile` as requirements.lock,
   with no lock to prefer) into a scratch folder, and prints what differs from the lock;
2. installs them into a new virtual environment there, with this source tree (editable);
3. runs the test suite, then the fan-out and overhead benchmarks (`bench.run_all --only fanout
   overhead`) with that environment's Python, writing their tables to the scratch folder.

Compare those tables with BENCHMARKS.md (taken with the lock's versions) before refreshing the lock.
`--quick` runs a subset of the tests and the benchmarks' smoke sizes: a check that the upgrade
installs and runs, not figures. Exits non-zero if anything fails; the version diff is always printed.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.lockfile import COMPILE, LOCK, ROOT, Pin, locked, read_pins

#: `--quick`'s tests: the lock's known casualties (schemathesis's pytest plugin, Pygments' markup),
#: litellm's real path against the scripted model server, and the lock's own checks.
QUICK_TESTS = (
    "tests/api/test_openapi.py",
    "tests/dashboard/test_execution_pages.py",
    "tests/engine/test_model_client.py",
    "tests/test_lock_file.py",
)


def uv() -> str:
    """uv from the dev environment (it is a dev dependency), else from PATH."""
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if found is None:
            raise SystemExit("upgrade_check: uv is not installed (it comes with the dev extra)") from None
        return found


def run(argv: list[str], **kwargs) -> int:
    print(f"\n$ {shlex.join(argv)}", flush=True)
    return subprocess.run(argv, cwd=ROOT, **kwargs).returncode


def resolve_newest(scratch: Path) -> Path:
    """The lock's own command, into a file with no earlier pins, so every package is at its newest."""
    output = scratch / "requirements.newest"
    argv = [uv(), *COMPILE[1:], "-o", str(output), "--upgrade", "--no-header", "-q"]
    if run(argv) != 0:
        raise SystemExit("upgrade_check: the ranges do not resolve")
    return output


def diff(old: list[Pin], new: list[Pin]) -> list[tuple[str, str, str]]:
    """(package, locked, newest) for every package whose pins differ; '-' where there is none."""

    def by_name(pins: list[Pin]) -> dict[str, str]:
        found: dict[str, list[str]] = {}
        for pin in pins:
            text = str(pin.version) + (f" ; {pin.marker}" if pin.marker else "")
            found.setdefault(pin.name, []).append(text)
        return {name: ", ".join(sorted(texts)) for name, texts in found.items()}

    before, after = by_name(old), by_name(new)
    return [
        (name, before.get(name, "-"), after.get(name, "-"))
        for name in sorted(before.keys() | after.keys())
        if before.get(name) != after.get(name)
    ]


def print_diff(rows: list[tuple[str, str, str]]) -> None:
    if not rows:
        print("\nThe lock already has the newest versions the ranges allow.")
        return
    width = max(len(r[0]) for r in rows)
    locked_width = max(len("requirements.lock"), *(len(r[1]) for r in rows))
    print(f"\n{'package':<{width}}  {'requirements.lock':<{locked_width}}  newest allowed")
    for name, old, new in rows:
        print(f"{name:<{width}}  {old:<{locked_width}}  {new}")


def make_environment(scratch: Path, requirements: Path) -> Path:
    venv = scratch / "venv"
    if run([uv(), "venv", "-q", "-p", sys.executable, str(venv)]) != 0:
        raise SystemExit("upgrade_check: could not create the scratch environment")
    python = venv / "bin" / "python"
    install = [uv(), "pip", "install", "-q", "--python", str(python), "--no-deps", "-r", str(requirements)]
    if run([*install, "-e", "."]) != 0:
        raise SystemExit("upgrade_check: the newest versions do not install")
    return python


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a test subset and the benchmarks' smoke sizes")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (it is printed)")
    parser.add_argument("--diff-only", action="store_true", help="resolve and print the diff, run nothing")
    args = parser.parse_args(argv)

    scratch = Path(tempfile.mkdtemp(prefix="rlm-upgrade-check-"))
    began = time.monotonic()
    try:
        newest = resolve_newest(scratch)
        rows = diff(locked(LOCK), read_pins(newest.read_text(encoding="utf-8")))
        print_diff(rows)
        if args.diff_only:
            return 0
        python = make_environment(scratch, newest)
        env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "VIRTUAL_ENV": str(python.parent.parent)}
        env["PATH"] = f"{python.parent}{os.pathsep}{env.get('PATH', '')}"
        tests = [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        tests_rc = run(tests + (list(QUICK_TESTS) if args.quick else []), env=env)
        benchmarks = scratch / "BENCHMARKS.newest.md"
        bench = [str(python), "-m", "bench.run_all", "--only", "fanout", "overhead"]
        bench += ["--quick", "--output", str(benchmarks)] if args.quick else ["--output", str(benchmarks)]
        bench_rc = run(bench, env=env)
        print_diff(rows)
        print(f"\ntests: {'passed' if tests_rc == 0 else f'FAILED (exit {tests_rc})'}")
        print(
            f"benchmarks: {'ran: compare the tables above with BENCHMARKS.md' if bench_rc == 0 else f'FAILED (exit {bench_rc})'}"
        )
        print(f"upgrade check took {time.monotonic() - began:.0f} s")
        return 0 if tests_rc == bench_rc == 0 else 1
    finally:
        if args.keep:
            print(f"scratch folder kept: {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
