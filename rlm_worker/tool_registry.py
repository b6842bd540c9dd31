"""Where the custom tools come from: the operator's settings and installed packages, never a request.

Two ways to register a Python function as a tool (docs/tools.md):
- `RLM_TOOLS=module:function,name=module:function,...` in the worker's environment;
- an entry point in the `rlm_engine.tools` group of an installed package
  (`[project.entry-points."rlm_engine.tools"] lookup = "mypkg.tools:lookup"`), named by its key.
`RLM_TOOLS_OFFERED=name,...` narrows what either offers (`none`: no tool at all). Nothing an API
caller sends can add to this list: it is read once, when the worker process starts.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

from rlm_worker.engine.tools import Tool, ToolBox, ToolError

ENTRY_POINT_GROUP = "rlm_engine.tools"


class ToolRegistrationError(RuntimeError):
    """A tool the operator registered cannot be loaded; the message names it and why."""


def load_tool_box(spec: str | None, offered: str | None, timeout_seconds: float) -> ToolBox:
    """The tools RLM_TOOLS and the entry points register, narrowed to RLM_TOOLS_OFFERED."""
    found: dict[str, Tool] = {}
    for name, target, where in [*_from_setting(spec), *_from_entry_points()]:
        try:
            tool = Tool.of(name or getattr(target, "__name__", ""), target)
        except ToolError as exc:
            raise ToolRegistrationError(f"{where}: {exc}") from None
        if tool.name in found:
            raise ToolRegistrationError(f"{where}: a tool named {tool.name!r} is registered twice")
        found[tool.name] = tool
    wanted = _offered(offered)
    if wanted is not None:
        unknown = sorted(wanted - set(found))
        if unknown:
            raise ToolRegistrationError(
                f"RLM_TOOLS_OFFERED names tools nobody registered: {', '.join(unknown)} "
                f"(registered: {', '.join(sorted(found)) or 'none'})"
            )
        found = {name: tool for name, tool in found.items() if name in wanted}
    return ToolBox(found.values(), timeout_seconds)


def _from_setting(spec: str | None) -> list[tuple[str | None, Any, str]]:
    tools = []
    for item in (spec or "").split(","):
        item = item.strip()
        if not item:
            continue
        name, _, target = item.rpartition("=")
        where = f"RLM_TOOLS entry {item!r}"
        module_name, sep, attribute = target.strip().partition(":")
        if not sep or not module_name or not attribute:
            raise ToolRegistrationError(f"{where}: write it as module:function or name=module:function")
        tools.append((name.strip() or None, _import(module_name, attribute, where), where))
    return tools


def _from_entry_points() -> list[tuple[str | None, Any, str]]:
    tools = []
    for point in entry_points(group=ENTRY_POINT_GROUP):
        where = f"entry point {point.name} = {point.value} ({ENTRY_POINT_GROUP})"
        try:
            target = point.load()
        except Exception as exc:
            raise ToolRegistrationError(f"{where}: cannot load it: {type(exc).__name__}: {exc}") from None
        tools.append((point.name, target, where))
    return tools


def _import(module_name: str, attribute: str, where: str) -> Any:
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise ToolRegistrationError(
            f"{where}: cannot import {module_name}: {type(exc).__name__}: {exc}"
        ) from None
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ToolRegistrationError(f"{where}: {module_name} has no {attribute}") from None
    return target


def _offered(value: str | None) -> set[str] | None:
    if value is None or not value.strip():
        return None
    if value.strip().lower() == "none":
        return set()
    return {name.strip() for name in value.split(",") if name.strip()}
