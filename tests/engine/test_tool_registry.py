"""Registering custom tools: RLM_TOOLS, the `rlm_engine.tools` entry points, RLM_TOOLS_OFFERED.

The entry point comes from a real distribution's metadata (a `.dist-info` folder on sys.path), so
importlib.metadata finds it exactly as it finds an installed package's."""

from __future__ import annotations

import pytest

from rlm_worker.engine.tools import ToolBox
from rlm_worker.tool_registry import ToolRegistrationError, load_tool_box

SAMPLE = "samples.tools:checksum,week=samples.tools:iso_week"


def test_the_setting_registers_functions_by_name_or_their_own_name():
    box = load_tool_box(SAMPLE, None, 5.0)
    assert box.names() == ["checksum", "week"] and box.timeout_seconds == 5.0
    assert box.tools["week"].function.__name__ == "iso_week"
    section = box.prompt_section()
    assert "`checksum(text: str, algorithm: str = 'sha256') -> str`: The hex digest" in section
    assert "`week(date: str) -> list[int]`: The ISO year" in section
    assert ToolBox().prompt_section() == "" and not ToolBox()


def test_the_operator_narrows_what_is_offered():
    assert load_tool_box(SAMPLE, "week", 5.0).names() == ["week"]
    assert load_tool_box(SAMPLE, "none", 5.0).names() == []
    with pytest.raises(ToolRegistrationError, match="RLM_TOOLS_OFFERED names tools nobody registered: nope"):
        load_tool_box(SAMPLE, "week,nope", 5.0)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("samples.tools", "write it as module:function"),
        ("no_such_module_xyz:f", "cannot import no_such_module_xyz: ModuleNotFoundError"),
        ("samples.tools:nothing", "samples.tools has no nothing"),
        ("llm_query=samples.tools:checksum", "'llm_query' is one of the REPL's own names"),
        ("context_3=samples.tools:checksum", "'context_3' is one of the REPL's own names"),
        ("_hidden=samples.tools:checksum", "starts with '_'"),
        ("samples.tools:checksum,checksum=samples.tools:iso_week", "registered twice"),
        ("samples.tools:__doc__", "is a str, not a function"),
    ],
)
def test_a_bad_registration_names_the_entry_and_why(spec, message):
    with pytest.raises(ToolRegistrationError, match=message):
        load_tool_box(spec, None, 5.0)


def test_entry_points_of_an_installed_package(tmp_path, monkeypatch):
    dist = tmp_path / "rlm_example_tools-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: rlm-example-tools\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[rlm_engine.tools]\nsha = samples.tools:checksum\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    box = load_tool_box("samples.tools:iso_week", None, 5.0)
    assert box.names() == ["iso_week", "sha"]
    assert box.tools["sha"].function("abc").startswith("ba7816bf")
    (dist / "entry_points.txt").write_text("[rlm_engine.tools]\nbroken = samples.tools:missing\n")
    with pytest.raises(ToolRegistrationError, match="entry point broken = samples.tools:missing"):
        load_tool_box(None, None, 5.0)
