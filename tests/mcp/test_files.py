"""`MCP_FILES_ROOT` keeps `ask_about_files` inside one folder, whatever the path says."""

from __future__ import annotations

import pytest

from rlm_api.mcp.files import FileRefused, resolve_under_root
from tests.mcp.conftest import files_root


@pytest.fixture()
def root(tmp_path):
    return files_root(tmp_path)


def test_paths_inside_the_root_resolve(root):
    assert resolve_under_root(str(root), "report.txt") == root / "report.txt"
    assert resolve_under_root(str(root), "reports/../report.txt") == root / "report.txt"
    assert resolve_under_root(str(root), ".") == root
    assert resolve_under_root(str(root), str(root / "reports")) == root / "reports"  # absolute, inside


@pytest.mark.parametrize(
    "path",
    ["..", "../secret.txt", "reports/../../secret.txt", "escape.txt", "outside/secret.txt", "outside"],
)
def test_paths_leaving_the_root_are_refused(root, path):
    with pytest.raises(FileRefused, match="outside the files root"):
        resolve_under_root(str(root), path)


def test_absolute_paths_elsewhere_are_refused(root):
    for path in (str(root.parent / "secret.txt"), "/etc/passwd", "/"):
        with pytest.raises(FileRefused, match="outside the files root"):
            resolve_under_root(str(root), path)


def test_no_root_no_files(root):
    for unset in (None, ""):
        with pytest.raises(FileRefused, match="MCP_FILES_ROOT"):
            resolve_under_root(unset, "report.txt")
    with pytest.raises(FileRefused, match="does not exist"):
        resolve_under_root(str(root), "missing.txt")
