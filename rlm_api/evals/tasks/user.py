"""Your own tasks, and the bundled document question set, as JSONL: one object a line.

    {"id": "q1", "input": "..." | "input_file": "doc.txt" | "input_file": "package:DIST/path",
     "question": "...", "answers": ["accepted", ...], "scorer": "contains_any",
     "split": "dev", "kind": "date"}

`answers: []` means the input does not answer (score with `abstain`). `input_file` is relative to
the JSONL file, or `package:DIST/relative/path` for a file an installed distribution ships. The
document set (`documents`) is `data/real_docs.jsonl` in this package, read when it is there.
"""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rlm_api.evals.scorers import SCORERS
from rlm_api.evals.tasks import TaskError, TaskItem
from rlm_api.schemas import Text

REAL_DOCS = Path(__file__).resolve().parent.parent / "data" / "real_docs.jsonl"


class TaskLine(BaseModel):
    """One line of a task file."""

    model_config = ConfigDict(extra="forbid")

    id: Text = Field(min_length=1, max_length=200)
    input: Text | None = Field(None, min_length=1)
    input_file: Text | None = None
    question: Text = Field(min_length=1)
    answers: list[Annotated[Text, Field(min_length=1)]]
    scorer: str = "contains_any"
    split: Text | None = Field(None, max_length=64)
    kind: Text | None = Field(None, max_length=200)

    @model_validator(mode="after")
    def _one_input(self) -> TaskLine:
        if (self.input is None) == (self.input_file is None):
            raise ValueError("give exactly one of input and input_file")
        if self.scorer not in SCORERS:
            raise ValueError(f"unknown scorer {self.scorer!r}; known: {', '.join(SCORERS)}")
        return self


def resolve_input_file(reference: str, base: Path) -> Path:
    """`package:DIST/relative/path` inside an installed distribution, else a path under `base`."""
    if reference.startswith("package:"):
        dist_name, _, relative = reference[len("package:") :].partition("/")
        try:
            dist = metadata.distribution(dist_name)
        except metadata.PackageNotFoundError:
            raise TaskError(f"{reference}: the distribution {dist_name!r} is not installed") from None
        shipped = {str(f) for f in dist.files or ()}
        if relative not in shipped:
            raise TaskError(f"{reference}: {dist_name} ships no file {relative!r}")
        return Path(str(dist.locate_file(relative)))
    path = (base / reference).resolve()
    if not path.is_relative_to(base.resolve()):
        raise TaskError(f"{reference}: input_file must stay inside the task file's folder")
    return path


def load_jsonl(path: Path, task: str | None = None) -> list[TaskItem]:
    """The items of a task file; a bad line is an error naming the file, the line and the field."""
    task = task or path.stem
    items = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise TaskError(f"{path}: {exc.strerror or exc}") from None
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            line = TaskLine.model_validate(json.loads(raw))
        except json.JSONDecodeError as exc:
            raise TaskError(f"{path}:{number}: not JSON: {exc.msg}") from None
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(p) for p in error["loc"]) or "line"
            raise TaskError(f"{path}:{number}: {where}: {error['msg']}") from None
        items.append(item_from_line(line, task, path.parent, where=f"{path}:{number}"))
    if not items:
        raise TaskError(f"{path}: no tasks in the file")
    return items


def item_from_line(line: TaskLine, task: str, base: Path | None, where: str) -> TaskItem:
    """The item of one validated line; `input_file` is read under `base` (None: not allowed)."""
    if line.input is not None:
        text = line.input
    elif base is None:
        raise TaskError(f"{where}: input_file is not accepted here; send the text as input")
    else:
        source = resolve_input_file(line.input_file or "", base)
        try:
            text = source.read_text(encoding="utf-8")
        except OSError as exc:
            raise TaskError(f"{where}: input_file {line.input_file}: {exc.strerror or exc}") from None
    return TaskItem(
        id=line.id,
        task=task,
        input=text,
        question=line.question,
        answers=tuple(line.answers),
        scorer=line.scorer,
        kind=line.kind or "",
        split=line.split,
    )


def real_docs() -> list[TaskItem]:
    """The bundled document question set (the offline real-text set), when this install has it."""
    if not REAL_DOCS.exists():
        raise TaskError(f"the document question set is not in this install ({REAL_DOCS.name} is missing)")
    return load_jsonl(REAL_DOCS, task="documents")
