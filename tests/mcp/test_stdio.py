"""`rlm mcp` as a real subprocess, driven by the SDK's stdio client, as Claude Desktop runs it."""

from __future__ import annotations

from importlib import metadata

from mcp import StdioServerParameters

from tests.cli.scripts import program_responder
from tests.mcp.client import calls_over_stdio, server_info_over_stdio
from tests.mcp.test_http import THREE_STEPS, TOOLS


def params(env: dict[str, str], *args: str) -> StdioServerParameters:
    return StdioServerParameters(command="rlm", args=["mcp", *args], env=env)


def test_rlm_mcp_answers_with_progress_as_the_local_user(cli_env, scripted, tmp_path):
    scripted.responder = program_responder(THREE_STEPS, sub="Table Bay")
    scripted.latency = 0.4
    (tmp_path / "notes.txt").write_text("The ship came to anchor in Table Bay.\n")
    env = {**cli_env, "MCP_FILES_ROOT": str(tmp_path)}
    names, (asked, listed, files, outside) = calls_over_stdio(
        params(env, "--agent-id", "claude-desktop"),
        [
            ("ask_about_text", {"question": "Where?", "text": "The ship came to anchor in Table Bay. " * 40}),
            ("list_executions", {"this_agent_only": True}),
            ("ask_about_files", {"question": "Where?", "path": "notes.txt"}),
            ("ask_about_files", {"question": "Where?", "path": "/etc/hostname"}),
        ],
    )
    assert set(names) == TOOLS
    assert not asked.is_error, asked.text
    assert asked.data["answer"] == "Table Bay" and asked.data["agent_id"] == "claude-desktop"
    assert asked.progress and "sub-calls" in asked.progress[-1][2]
    assert [e["id"] for e in listed.data["executions"]] == [asked.data["id"]]
    assert files.data["status"] == "succeeded", files.text
    assert outside.is_error and "outside the files root" in outside.text


def test_files_are_refused_without_a_root_and_models_off_the_list(cli_env, scripted):
    env = {**cli_env, "MODEL_ALLOWLIST": "openai/scripted-*"}
    env.pop("MCP_FILES_ROOT", None)
    _, (files, model, missing) = calls_over_stdio(
        params(env),
        [
            ("ask_about_files", {"question": "Where?", "path": "."}),
            ("ask_about_text", {"question": "Where?", "text": "t", "model": "openai/gpt-4o"}),
            ("get_execution", {"execution_id": "0" * 32}),
        ],
    )
    assert files.is_error and "MCP_FILES_ROOT" in files.text
    assert model.is_error and "openai/gpt-4o" in model.text and "MODEL_ALLOWLIST" in model.text
    assert missing.is_error and "not found" in missing.text


def test_the_server_names_its_version_on_initialize(cli_env):
    info = server_info_over_stdio(params(cli_env))
    assert info.name == "rlm-engine"
    assert info.version == metadata.version("rlm-engine") != ""
