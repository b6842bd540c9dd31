"""The SQL the dashboard reads with: light columns for big trees, one indexed query per tree.

A trace can hold thousands of nodes whose prompts carry 100 kB chunks of context, so the tree
query reads only short previews; full texts are read one node at a time when a node is opened.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import Any

import sqlalchemy as sa

from rlm_api.auth import owned
from rlm_api.database import db
from rlm_api.passages import HEAD_CHARS, TAIL_CHARS, Place, documents, locate
from rlm_shared.live_totals import answered_model_call, cancelled_sub_call, stored_totals, trace_totals_many
from rlm_shared.models import (
    MODEL_CALL_KINDS,
    Context,
    Execution,
    MemoryContent,
    MemorySnapshot,
    Session,
    TraceNode,
)
from rlm_shared.strategies import helpers_source

PREVIEW_CHARS = 160
PAGE_SIZE = 50
#: How the root "model" of a fixed root program is written: `(strategy search)`, `(root_code)`.
PROGRAM_LABEL_START = "("
#: How a strategy's code starts (the helpers' docstring), told apart in SQL without reading it all.
HELPERS_MARK = helpers_source()[:60]


@dataclass
class Page:
    """One page of a listing, with what the pager needs."""

    items: list[Any]
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages


def _preview_column() -> sa.ColumnElement[str]:
    """What a tree row shows as its label: the query, the code, the prompt or the reply. A
    strategy's code opens with the helpers every strategy shares: its label is its own program."""

    def head(column: Any, start: int = 1) -> Any:
        return sa.func.substr(column, start, PREVIEW_CHARS)

    helpers = helpers_source()
    strategy_code = sa.func.substr(TraceNode.code, 1, len(HELPERS_MARK)) == HELPERS_MARK
    return sa.case(
        (sa.and_(TraceNode.kind == "code", strategy_code), head(TraceNode.code, len(helpers) + 1)),
        (TraceNode.kind == "code", head(TraceNode.code)),
        (TraceNode.kind == "iteration", head(sa.func.coalesce(TraceNode.response, TraceNode.prompt))),
        else_=head(TraceNode.prompt),
    ).label("preview")


def _prompt_columns() -> tuple[sa.ColumnElement[Any], ...]:
    """A sub-call's prompt start, end and length: enough to tell which passage it read
    (`rlm_api.passages`) without reading 100 kB prompts for a whole tree."""
    is_call = TraceNode.kind == "llm_call"
    length = sa.func.length(TraceNode.prompt)
    tail = sa.case(
        (length > TAIL_CHARS, sa.func.substr(TraceNode.prompt, length - (TAIL_CHARS - 1))),
        else_=TraceNode.prompt,
    )
    return (
        sa.case((is_call, sa.func.substr(TraceNode.prompt, 1, HEAD_CHARS))).label("prompt_head"),
        sa.case((is_call, tail)).label("prompt_tail"),
        sa.case((is_call, length)).label("prompt_length"),
    )


_TREE_COLUMNS = (
    TraceNode.id,
    TraceNode.parent_id,
    TraceNode.depth,
    TraceNode.seq,
    TraceNode.path,
    TraceNode.kind,
    TraceNode.model,
    TraceNode.status,
    TraceNode.input_tokens,
    TraceNode.output_tokens,
    TraceNode.cost_usd,
    TraceNode.queued_at,
    TraceNode.started_at,
    TraceNode.finished_at,
    sa.func.substr(TraceNode.error, 1, 300).label("error"),
    _preview_column(),
    *_prompt_columns(),
)


def tree_rows(execution_id: str) -> list[sa.Row]:
    """Every node of one execution in display order, without full texts (index on execution_id, path)."""
    stmt = sa.select(*_TREE_COLUMNS).where(TraceNode.execution_id == execution_id).order_by(TraceNode.path)
    return list(db.session.execute(stmt))


def tree_version(execution: Execution) -> str:
    """Changes whenever anything the live page shows changes; equal versions mean 'nothing new'."""
    count, finished, last_start, tokens = db.session.execute(
        sa.select(
            sa.func.count(TraceNode.id),
            sa.func.count(TraceNode.finished_at),
            sa.func.max(TraceNode.started_at),
            # A reply's tokens land on a node that is still running: the header's live totals move.
            sa.func.coalesce(sa.func.sum(TraceNode.input_tokens + TraceNode.output_tokens), 0),
        ).where(TraceNode.execution_id == execution.id)
    ).one()
    snapshots = db.session.scalar(
        sa.select(sa.func.count(MemorySnapshot.id)).where(MemorySnapshot.execution_id == execution.id)
    )
    stamp = last_start.timestamp() if last_start else 0
    return (
        f"{execution.status}-{count}-{finished}-{snapshots}-{execution.iterations}-"
        f"{execution.total_input_tokens + execution.total_output_tokens}-{tokens}-{stamp:.6f}"
    )


def node(execution_id: str, node_id: str) -> TraceNode | None:
    return db.session.scalar(
        sa.select(TraceNode).where(TraceNode.execution_id == execution_id, TraceNode.id == node_id)
    )


def agent_paths(execution_id: str) -> set[str]:
    """Paths of the nodes that own an agent loop (the root and every recursive child)."""
    stmt = sa.select(TraceNode.path).where(
        TraceNode.execution_id == execution_id, TraceNode.kind.in_(("root", "child_rlm"))
    )
    return set(db.session.scalars(stmt))


def snapshot_index(execution_id: str) -> list[sa.Row]:
    """(id, seq, node_id, path, kind) of every memory snapshot, oldest first, without the blocks."""
    stmt = (
        sa.select(
            MemorySnapshot.id, MemorySnapshot.seq, MemorySnapshot.node_id, TraceNode.path, TraceNode.kind
        )
        .join(TraceNode, TraceNode.id == MemorySnapshot.node_id, isouter=True)
        .where(MemorySnapshot.execution_id == execution_id)
        .order_by(MemorySnapshot.seq, MemorySnapshot.id)
    )
    return list(db.session.execute(stmt))


def snapshot_blocks(snapshot_ids: list[int]) -> dict[int, dict[str, Any]]:
    if not snapshot_ids:
        return {}
    stmt = (
        sa.select(MemorySnapshot.id, MemorySnapshot.blocks, MemoryContent.blocks.label("shared"))
        .join(MemoryContent, MemoryContent.sha256 == MemorySnapshot.content_sha256, isouter=True)
        .where(MemorySnapshot.id.in_(snapshot_ids))
    )  # the shared copy; rows older than revision 0006 hold their own
    return {row.id: row.shared or row.blocks or {} for row in db.session.execute(stmt)}


def executions_page(
    status: str | None, session_id: str | None, page: int, agent_id: str | None = None
) -> Page:
    """Executions, newest first, with their session's name; filtered by status, session and agent."""
    filters = []
    if status:
        filters.append(Execution.status == status)
    if session_id:
        filters.append(Execution.session_id == session_id)
    if agent_id:
        filters.append(Execution.agent_id == agent_id)
    total = db.session.scalar(owned(sa.select(sa.func.count(Execution.id)).where(*filters), Execution)) or 0
    stmt = (
        sa.select(
            Execution,
            Session.name.label("session_name"),
            Context.kind.label("input_kind"),
            Context.size_chars.label("input_size"),
            sa.func.substr(Context.content, 1, INPUT_HEAD_CHARS).label("input_head"),
        )
        .join(Session, Session.id == Execution.session_id, isouter=True)
        .join(Context, Context.id == Execution.context_id, isouter=True)
        .where(*filters)
        .order_by(Execution.created_at.desc(), Execution.id)
        .limit(PAGE_SIZE)
        .offset((page - 1) * PAGE_SIZE)
    )
    rows = list(db.session.execute(owned(stmt, Execution)))
    # Live figures for the rows still running, from their traces (as the execution page shows them).
    live = trace_totals_many(db.session, [r.Execution.id for r in rows if not r.Execution.is_finished])
    items = [
        (
            row.Execution,
            row.session_name,
            input_label(row.input_kind, row.input_size, row.input_head),
            live.get(row.Execution.id) or stored_totals(row.Execution),
        )
        for row in rows
    ]
    return Page(items=items, page=page, per_page=PAGE_SIZE, total=total)


#: How much of an input the executions list reads to name it.
INPUT_HEAD_CHARS = 300
_FIRST_NAME = re.compile(r'"name":\s*"((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class InputLabel:
    """What the executions list shows of an input: a file name or its first words, and its size."""

    text: str
    size: int | None
    documents: int | None = None


def input_label(kind: str | None, size: int | None, head: str | None) -> InputLabel | None:
    """The first document's name for a list of documents (a folder, an upload), else the text's
    first characters, so the same question on two inputs can be told apart."""
    if head is None:
        return None
    if kind != "str":
        names = _FIRST_NAME.findall(head)
        if names:
            return InputLabel(text=names[0], size=size)
    words = " ".join(head.split())
    return InputLabel(text=words[:INPUT_WORDS] + ("…" if len(words) > INPUT_WORDS else ""), size=size)


INPUT_WORDS = 40


def session_names() -> list[tuple[str, str]]:
    stmt = sa.select(Session.id, Session.name).order_by(Session.created_at.desc()).limit(500)
    return [(row.id, row.name) for row in db.session.execute(owned(stmt, Session))]


def sessions_page(page: int) -> Page:
    """Sessions, newest first, with context size and how many executions each has."""
    total = db.session.scalar(owned(sa.select(sa.func.count(Session.id)), Session)) or 0
    runs = (
        sa.select(sa.func.count(Execution.id))
        .where(Execution.session_id == Session.id)
        .correlate(Session)
        .scalar_subquery()
    )
    stmt = (
        sa.select(Session, Context.size_chars, runs.label("runs"))
        .join(Context, Context.id == Session.context_id, isouter=True)
        .order_by(Session.created_at.desc(), Session.id)
        .limit(PAGE_SIZE)
        .offset((page - 1) * PAGE_SIZE)
    )
    items = [(row.Session, row.size_chars, row.runs) for row in db.session.execute(owned(stmt, Session))]
    return Page(items=items, page=page, per_page=PAGE_SIZE, total=total)


@lru_cache(maxsize=2)
def context_documents(context_id: str) -> list[tuple[str | None, str]]:
    """The texts of a context, for finding passages in (contexts never change: kept for the
    next render of the same execution's live page)."""
    row = db.session.execute(sa.select(Context.kind, Context.content).where(Context.id == context_id)).one()
    return documents(row.kind, row.content)


@lru_cache(maxsize=8192)
def passage_place(context_id: str, passage_head: str, length: int | None) -> Place | None:
    return locate(context_documents(context_id), passage_head, length)


def context_size(context_id: str | None) -> int | None:
    if context_id is None:
        return None
    return db.session.scalar(sa.select(Context.size_chars).where(Context.id == context_id))


@dataclass
class Totals:
    executions: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    llm_calls: int
    sub_calls: int
    #: Sub-calls stopped before the model answered them: not model calls, counted apart.
    cancelled_calls: int = 0
    #: Succeeded, but the input did not answer the question (final answer NONE).
    no_answer: int = 0


def totals() -> Totals:
    row = owned(
        sa.select(
            sa.func.count(Execution.id),
            sa.func.coalesce(sa.func.sum(Execution.total_input_tokens), 0),
            sa.func.coalesce(sa.func.sum(Execution.total_output_tokens), 0),
            sa.func.coalesce(sa.func.sum(Execution.total_cost_usd), 0.0),
            sa.func.coalesce(sa.func.sum(Execution.llm_calls), 0),
            sa.func.coalesce(sa.func.sum(Execution.sub_calls), 0),
        ).select_from(Execution),
        Execution,
    )
    row = db.session.execute(row).one()
    calls = db.session.execute(
        owned(
            sa.select(
                sa.func.count().filter(answered_model_call()),
                sa.func.count().filter(cancelled_sub_call()),
            ).join(Execution, Execution.id == TraceNode.execution_id),
            Execution,
        )
    ).one()
    no_answer = db.session.scalar(
        owned(
            sa.select(sa.func.count(Execution.id)).where(
                Execution.status == "succeeded", Execution.answer_found.is_(False)
            ),
            Execution,
        )
    )
    # Model calls as the by-model table counts them (from the traces): the two always agree.
    return Totals(
        executions=int(row[0]),
        input_tokens=int(row[1]),
        output_tokens=int(row[2]),
        cost_usd=float(row[3]),
        llm_calls=int(calls[0]),
        sub_calls=int(row[5]),
        cancelled_calls=int(calls[1]),
        no_answer=int(no_answer or 0),
    )


#: The status chart's bar for runs that succeeded without finding an answer.
NO_ANSWER = "no answer found"


def executions_by_status() -> dict[str, int]:
    """Executions per status; a run that found no answer is `NO_ANSWER`, not `succeeded`."""
    status = sa.case(
        (sa.and_(Execution.status == "succeeded", Execution.answer_found.is_(False)), NO_ANSWER),
        else_=Execution.status,
    )
    stmt = owned(sa.select(status, sa.func.count(Execution.id)).group_by(status), Execution)
    return {name: int(count) for name, count in db.session.execute(stmt)}


def usage_by_model() -> list[sa.Row]:
    """Model calls, tokens and cost per model over every trace (root and sub-call models alike);
    sub-calls cancelled before the model answered are counted apart (`cancelled`), not as calls."""
    stmt = (
        sa.select(
            TraceNode.model,
            sa.func.count(TraceNode.id).filter(answered_model_call()).label("calls"),
            sa.func.count(TraceNode.id).filter(cancelled_sub_call()).label("cancelled"),
            sa.func.sum(TraceNode.input_tokens + TraceNode.output_tokens).label("tokens"),
            sa.func.sum(TraceNode.cost_usd).label("cost"),
        )
        .join(Execution, Execution.id == TraceNode.execution_id)
        .where(
            TraceNode.kind.in_(MODEL_CALL_KINDS),
            TraceNode.model.is_not(None),
            # `(strategy search)`, `(root_code)`: a fixed root program, no model was called
            sa.not_(TraceNode.model.startswith(PROGRAM_LABEL_START)),
        )
        .group_by(TraceNode.model)
        .order_by(sa.desc("cost"), TraceNode.model)
    )
    return list(db.session.execute(owned(stmt, Execution)))


def usage_by_day(days: int = 30) -> list[tuple[date, int, int, float]]:
    """(day, executions, tokens, cost) for the last `days` days that had executions, oldest first."""
    day = sa.func.date(Execution.created_at)
    stmt = (
        sa.select(
            day.label("day"),
            sa.func.count(Execution.id),
            sa.func.sum(Execution.total_input_tokens + Execution.total_output_tokens),
            sa.func.sum(Execution.total_cost_usd),
        )
        .group_by(day)
        .order_by(day.desc())
        .limit(days)
    )
    out = []
    for value, runs, tokens, cost in db.session.execute(owned(stmt, Execution)):
        when = value if isinstance(value, date) else datetime.fromisoformat(str(value)).date()
        out.append((when, int(runs), int(tokens or 0), float(cost or 0.0)))
    return list(reversed(out))
