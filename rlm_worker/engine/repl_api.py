"""The worker side of the REPL API: what `llm_query`, `rlm_query` and `memory` do when called.

The sandbox's stubs send (function, arguments); `ReplCalls.handle` validates them and answers.
Leaf sub-calls go to the dispatcher (answered from the trace on a resumed run); recursive
children are new agents with their own REPL, run on threads of this process.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from rlm_worker.engine import embeddings, retrieval
from rlm_worker.engine.budget import Budget, GuardTripped
from rlm_worker.engine.local_model import UnknownLocalModel, check_local
from rlm_worker.engine.memory import MemoryBlocks, MemoryError_
from rlm_worker.engine.ports import CallRejected, TraceSink
from rlm_worker.engine.subcall import refused_llm_calls
from rlm_worker.engine.subcall_gate import dispatch_through_gate
from rlm_worker.engine.tools import call_tool
from rlm_worker.engine.tree import TreeCursor
from rlm_worker.engine.types import LLMCall, LLMCallOutcome, TraceNode, utcnow


class Agent(Protocol):
    """What the REPL calls need of the agent whose cell made them (`engine/loop.py`'s Agent), so
    this module does not import the loop that imports it."""

    depth: int
    model: str
    memory: MemoryBlocks
    budget: Budget
    sink: TraceSink
    #: The execution tree's shared state (`loop._RunState`): its engine, request and options.
    run_state: Any

    def child(self, node: TraceNode, query: str, context: Any, model: str, memory: MemoryBlocks) -> Agent: ...

    def run(self) -> Any: ...


class ReplCalls:
    """Answers the REPL calls of one code cell of one agent; children hang under `cursor`'s node."""

    def __init__(self, agent: Agent, cursor: TreeCursor) -> None:
        self.agent = agent
        self.cursor = cursor

    def handle(self, fn: str, args: dict[str, Any]) -> Any:
        try:
            return self._dispatch_call(fn, args)
        except GuardTripped as exc:
            raise CallRejected(f"execution stopped by guard {exc.guard}: {exc}") from None
        except MemoryError_ as exc:
            raise CallRejected(str(exc)) from None

    def _dispatch_call(self, fn: str, args: dict[str, Any]) -> Any:
        model = args.get("model")
        if fn == "llm_query":
            return self._llm_queries([_text(args.get("prompt"), "prompt")], model)[0]
        if fn == "llm_query_batched":
            return self._llm_queries(_texts(args.get("prompts")), model)
        if fn == "rlm_query":
            prompt = _text(args.get("prompt"), "prompt")
            return self._rlm_queries([prompt], [args.get("context")], model, args.get("inherit_memory"))[0]
        if fn == "rlm_query_batched":
            batch = _texts(args.get("prompts"))
            contexts = args.get("contexts") or [None] * len(batch)
            if not isinstance(contexts, list) or len(contexts) != len(batch):
                raise CallRejected("contexts must be a list as long as prompts")
            return self._rlm_queries(batch, contexts, model, args.get("inherit_memory"))
        if fn == "rank_passages":
            return self._rank_passages(args)
        if fn == "rank_by_meaning":
            return self._rank_by_meaning(args)
        if fn == "tool":
            agent = self.agent
            return call_tool(
                agent.run_state.engine.tools, args, agent.budget, agent.sink, self.cursor, agent.depth
            )
        if fn == "memory_read":
            return self.agent.memory.read(_text(args.get("label"), "label"))
        if fn == "memory_blocks":
            return self.agent.memory.snapshot()
        if fn == "memory_set":
            self.agent.memory.set(_text(args.get("label"), "label"), _text(args.get("text"), "text"))
            return None
        if fn == "memory_append":
            self.agent.memory.append(_text(args.get("label"), "label"), _text(args.get("text"), "text"))
            return None
        if fn == "memory_replace":
            self.agent.memory.replace(
                _text(args.get("label"), "label"),
                _text(args.get("old"), "old"),
                _text(args.get("new"), "new"),
            )
            return None
        raise CallRejected(f"unknown REPL function {fn!r}")

    def plain_llm_call(self, prompt: str, model: str) -> LLMCallOutcome:
        """One leaf call under this cursor's node (a child run without a REPL uses it)."""
        return self._llm_outcomes([prompt], model)[0]

    def _llm_queries(self, prompt_list: list[str], model: str | None) -> list[str]:
        return [o.as_repl_value() for o in self._llm_outcomes(prompt_list, model)]

    def _llm_outcomes(self, prompt_list: list[str], model: str | None) -> list[LLMCallOutcome]:
        model = model or self.agent.run_state.request.sub_model
        self.agent.budget.reserve_sub_calls(len(prompt_list))
        calls = self._calls(prompt_list, model)
        refusal = self._refusal(model)
        if refusal is not None:  # never dispatched: the trace shows each refused call
            return refused_llm_calls(calls, refusal, self.agent.sink)
        outcomes = self._replayed_or_dispatched(calls)
        for o in outcomes:
            if o.answered:
                self.agent.budget.add_usage(o.input_tokens, o.output_tokens, o.cost_usd)
        # A batch cut short by a stop (cancellation, the time limit) ends the cell here rather
        # than handing the code error strings to carry on with.
        self.agent.budget.check()
        return outcomes

    def _refusal(self, model: str) -> str | None:
        """Why `model` may not be used (MODEL_ALLOWLIST), or None."""
        policy = self.agent.run_state.engine.model_policy
        try:
            check_local(model)  # a `local/` name nothing here serves: never a silent stand-in
        except UnknownLocalModel as exc:
            return str(exc)
        return None if policy.allows(model) else policy.refusal(model)

    def _calls(self, prompt_list: list[str], model: str) -> list[LLMCall]:
        cursor = self.cursor
        parent = cursor.parent
        assert parent is not None
        return [
            LLMCall(
                execution_id=self.agent.run_state.execution_id,
                node_id=node_id,
                parent_id=parent.id,
                path=path,
                depth=self.agent.depth + 1,
                seq=seq,
                model=model,
                prompt=prompt,
            )
            for (seq, path, node_id), prompt in zip(cursor.next(len(prompt_list)), prompt_list, strict=True)
        ]

    def _rank_passages(self, args: dict[str, Any]) -> list[tuple[int, float]]:
        """BM25 ranking on the worker (the sandbox has no IR library); one `search` node in the trace."""
        return self._ranking(args, "rank_passages", "bm25", retrieval.rank_passages, (retrieval.RankingError,))

    def _rank_by_meaning(self, args: dict[str, Any]) -> list[tuple[int, float]]:
        """Ranking by sentence embeddings (all-MiniLM-L6-v2 on llama.cpp); one `search` node too."""
        return self._ranking(
            args,
            "rank_by_meaning",
            "all-MiniLM-L6-v2",
            embeddings.rank_by_meaning,
            (embeddings.MeaningError, embeddings.EmbeddingsUnavailable),
        )

    def _ranking(
        self, args: dict[str, Any], name: str, model: str, rank: Any, errors: tuple[type[Exception], ...]
    ) -> list[tuple[int, float]]:
        """One ranking call, in the worker, under the execution's time limit and cancel (checked
        between batches) and a budget of its own (`max_ranking_seconds`, the whole tree's)."""
        passages = _texts(args.get("passages"), "passages")
        query = _text(args.get("query"), "query")
        k = args.get("k", 10)
        if not isinstance(k, int) or isinstance(k, bool):
            raise CallRejected(f"k must be an int, not {type(k).__name__}")
        budget = self.agent.budget
        budget.check()
        stop = _RankingStop(budget, name)
        stop()
        node = self.cursor.child(
            "search", self.agent.depth, model=model, prompt=f"{query}\n(k={k}, {len(passages)} passages)"
        )
        self.agent.sink.node_started(node)
        try:
            ranked = rank(passages, query, k, stop)
        except (*errors, RankingBudgetSpent, GuardTripped) as exc:
            node.status, node.error, node.finished_at = "failed", str(exc), utcnow()
            self.agent.sink.node_finished(node)
            if isinstance(exc, GuardTripped):
                raise
            raise CallRejected(str(exc)) from None
        finally:
            budget.spend_ranking(stop.elapsed())
        node.response = ", ".join(f"#{i} ({score:.2f})" for i, score in ranked) or "(no passage matches)"
        node.status, node.finished_at = "succeeded", utcnow()
        self.agent.sink.node_finished(node)
        return ranked

    def _replayed_or_dispatched(self, calls: list[LLMCall]) -> list[LLMCallOutcome]:
        """Sub-calls an earlier attempt already finished come from its trace; the rest are dispatched."""
        recorded = self.agent.run_state.request.recorded
        outcomes: dict[str, LLMCallOutcome] = {}
        for call in calls:
            earlier = recorded.get(call.node_id)
            if (
                earlier is not None
                and earlier.status == "succeeded"
                and earlier.response is not None
                and earlier.prompt == call.prompt  # code that replays differently asks anew
            ):
                outcomes[call.node_id] = LLMCallOutcome(
                    node_id=call.node_id,
                    text=earlier.response,
                    input_tokens=earlier.input_tokens,
                    output_tokens=earlier.output_tokens,
                    cost_usd=earlier.cost_usd,
                    model=earlier.model,
                )
        missing = [c for c in calls if c.node_id not in outcomes]
        if missing:
            budget = self.agent.budget
            fresh = dispatch_through_gate(
                self.agent.run_state.engine.dispatcher,
                missing,
                budget.subcall_gate,
                budget.remaining_seconds,
                budget.stopped,
            )
            outcomes.update((o.node_id, o) for o in fresh)
        return [outcomes[c.node_id] for c in calls]

    def _rlm_queries(
        self,
        prompt_list: list[str],
        contexts: list[Any],
        model: str | None,
        inherit_memory: bool | None,
    ) -> list[str]:
        cursor = self.cursor
        if self.agent.depth + 1 > self.agent.run_state.options.max_recursion_depth:
            return self._llm_queries(prompt_list, model)
        self.agent.budget.reserve_sub_calls(len(prompt_list))
        inherit = (
            self.agent.run_state.options.inherit_memory if inherit_memory is None else bool(inherit_memory)
        )
        child_model = model or self._child_model()
        refusal = self._refusal(child_model)
        if refusal is not None:
            return self._refused_children(prompt_list, child_model, refusal)
        before = self.agent.memory.snapshot()
        children = []
        for prompt, context in zip(prompt_list, contexts, strict=True):
            node = cursor.child("child_rlm", self.agent.depth + 1, model=child_model, prompt=prompt)
            self.agent.sink.node_started(node)
            children.append(
                self.agent.child(
                    node=node,
                    query=prompt,
                    context=context if context is not None else prompt,
                    model=child_model,
                    memory=MemoryBlocks(before if inherit else {}),
                )
            )
        if len(children) == 1:
            outcomes = [children[0].run()]
        else:
            with ThreadPoolExecutor(
                max_workers=self.agent.budget.subcall_gate.workers_for(len(children), 16),
                thread_name_prefix="rlm-child",
            ) as pool:
                outcomes = list(pool.map(lambda agent: agent.run(), children))
        answers = []
        for child, outcome in zip(children, outcomes, strict=True):
            if inherit:
                self.agent.memory.merge_learnings(child.memory.snapshot(), before)
            node = child.node
            node.response, node.error = outcome.final, outcome.error
            node.status = "succeeded" if outcome.final is not None and not outcome.error else "failed"
            node.finished_at = utcnow()
            self.agent.sink.node_finished(node)
            self.agent.sink.memory_snapshot(
                self.agent.run_state.execution_id, node.id, self.agent.memory.snapshot()
            )
            answers.append(
                outcome.final if outcome.final is not None else f"Error: {outcome.error or 'no answer'}"
            )
        self.agent.budget.check()
        return answers

    def _child_model(self) -> str:
        """A child runs on its parent's model; under a root program (no root model) the sub-model."""
        request = self.agent.run_state.request
        return request.sub_model if self.agent.depth == 0 and request.root_code else self.agent.model

    def _refused_children(self, prompt_list: list[str], model: str, refusal: str) -> list[str]:
        """rlm_query with a model off the allow-list: no child starts; each answer is the refusal."""
        for prompt in prompt_list:
            node = self.cursor.child("child_rlm", self.agent.depth + 1, model=model, prompt=prompt)
            node.status, node.error, node.finished_at = "failed", refusal, utcnow()
            self.agent.sink.node_started(node)
            self.agent.sink.node_finished(node)
        return [f"Error: {refusal}"] * len(prompt_list)


class RankingBudgetSpent(Exception):
    """The execution used its `max_ranking_seconds`."""


class _RankingStop:
    """`should_stop` of one ranking call: the time limit and cancel (Budget.check raises
    GuardTripped), then what is left of the execution's ranking time."""

    def __init__(self, budget: Budget, name: str) -> None:
        self.budget = budget
        self.name = name
        self.started = time.monotonic()
        self.left = budget.ranking_seconds_left()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def __call__(self) -> None:
        self.budget.check()
        if self.elapsed() >= self.left:
            limit = self.budget.options.max_ranking_seconds
            raise RankingBudgetSpent(
                f"{self.name} stopped: the execution used its {limit:g} s of ranking time "
                f"(max_ranking_seconds={limit:g}); rank fewer passages (rank_passages first narrows them)"
            )


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise CallRejected(f"{name} must be a str, not {type(value).__name__}")
    return value


def _texts(value: Any, name: str = "prompts") -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CallRejected(f"{name} must be a list of str")
    return value
