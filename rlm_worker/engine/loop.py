"""The agent loop: prompt the model, run its code in the REPL, feed the output back, until FINAL.

One `Agent` is one loop (the root, or a recursive `rlm_query` child with its own REPL). The
`Engine` wires a root agent to the ports and turns its outcome into an `ExecutionResult`.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from rlm_worker.engine import prompts
from rlm_worker.engine.budget import Budget, GuardTripped
from rlm_worker.engine.memory import MemoryBlocks, MemoryError_
from rlm_worker.engine.options import ExecutionOptions
from rlm_worker.engine.parsing import extract_code_cells, find_bare_final, truncate_output
from rlm_worker.engine.ports import (
    CallRejected,
    Dispatcher,
    ModelClient,
    ModelError,
    Sandbox,
    SandboxFactory,
    TraceSink,
)
from rlm_worker.engine.tree import TreeCursor
from rlm_worker.engine.types import CellResult, LLMCall, LLMCallOutcome, TraceNode, utcnow


@dataclass
class ExecutionRequest:
    execution_id: str
    user_query: str
    context: Any
    root_model: str
    sub_model: str
    options: ExecutionOptions = field(default_factory=ExecutionOptions)
    memory: dict[str, str] = field(default_factory=dict)
    variables: dict[str, Any] = field(default_factory=dict)
    #: A fixed root program (a built-in strategy or the user's own code) run instead of a root model.
    root_code: str | None = None
    root_code_label: str = "root_code"
    #: Finished nodes of an earlier attempt, by id: a resumed execution answers model calls and
    #: sub-calls it already paid for from here instead of calling the model again.
    recorded: dict[str, TraceNode] = field(default_factory=dict)
    #: Export the REPL's JSON-serialisable variables at the end (sessions keep them).
    keep_variables: bool = True


@dataclass
class ExecutionResult:
    status: str
    final_answer: str | None
    error: str | None
    iterations: int
    forced_final: bool
    guard_hit: str | None
    memory: dict[str, str]
    variables: dict[str, Any]
    dropped_variables: list[str]
    input_tokens: int
    output_tokens: int
    cost_usd: float
    llm_calls: int
    sub_calls: int
    root_node_id: str


@dataclass
class AgentOutcome:
    final: str | None = None
    error: str | None = None
    iterations: int = 0
    forced: bool = False
    variables: dict[str, Any] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)


class Engine:
    """Runs executions. Holds only ports; one instance serves many executions and threads."""

    def __init__(
        self,
        model_client: ModelClient,
        dispatcher: Dispatcher,
        sink: TraceSink,
        sandbox_factory: SandboxFactory,
    ) -> None:
        self.model_client = model_client
        self.dispatcher = dispatcher
        self.sink = sink
        self.sandbox_factory = sandbox_factory

    def run(self, request: ExecutionRequest, is_cancelled: Any = None) -> ExecutionResult:
        budget = Budget(request.options, is_cancelled)
        memory = MemoryBlocks(request.memory)
        root = TreeCursor(request.execution_id, None).child(
            "root", 0, model=request.root_model, prompt=request.user_query
        )
        self.sink.node_started(root)
        self.sink.memory_snapshot(request.execution_id, root.id, memory.snapshot())
        agent = Agent(
            run=_RunState(self, request, budget),
            depth=0,
            node=root,
            query=request.user_query,
            context=request.context,
            model=request.root_model,
            memory=memory,
            variables=request.variables,
            export_variables=request.keep_variables,
        )
        outcome = (
            agent.run_program(request.root_code, request.root_code_label)
            if request.root_code
            else agent.run()
        )
        guard = budget.tripped.guard if budget.tripped else None
        status = _status_for(outcome, guard)
        root.status = "succeeded" if status == "succeeded" else status
        root.response, root.error, root.finished_at = outcome.final, outcome.error, utcnow()
        root.input_tokens, root.output_tokens = budget.input_tokens, budget.output_tokens
        root.cost_usd = budget.cost_usd
        if outcome.dropped:
            root.stderr = f"not kept for the session (not JSON-serialisable): {', '.join(outcome.dropped)}"
        self.sink.node_finished(root)
        return ExecutionResult(
            status=status,
            final_answer=outcome.final,
            error=outcome.error,
            iterations=outcome.iterations,
            forced_final=outcome.forced,
            guard_hit=guard,
            memory=memory.snapshot(),
            variables=outcome.variables,
            dropped_variables=outcome.dropped,
            input_tokens=budget.input_tokens,
            output_tokens=budget.output_tokens,
            cost_usd=budget.cost_usd,
            llm_calls=budget.model_calls,
            sub_calls=budget.sub_calls,
            root_node_id=root.id,
        )


def _status_for(outcome: AgentOutcome, guard: str | None) -> str:
    if guard == "cancelled":
        return "cancelled"
    if guard == "timeout_seconds":
        return "timed_out"
    if outcome.final is not None and guard is None:
        return "succeeded"
    return "failed"


@dataclass
class _RunState:
    """What every agent of one execution tree shares."""

    engine: Engine
    request: ExecutionRequest
    budget: Budget

    @property
    def options(self) -> ExecutionOptions:
        return self.request.options

    @property
    def execution_id(self) -> str:
        return self.request.execution_id


class Agent:
    """One RLM loop with its own REPL."""

    def __init__(
        self,
        run: _RunState,
        depth: int,
        node: TraceNode,
        query: str,
        context: Any,
        model: str,
        memory: MemoryBlocks,
        variables: dict[str, Any] | None = None,
        export_variables: bool = False,
    ) -> None:
        self.run_state = run
        self.depth = depth
        self.node = node
        self.query = query
        self.context = context
        self.model = model
        self.memory = memory
        self.variables = variables or {}
        self.export_variables = export_variables
        self.cursor = TreeCursor(run.execution_id, node)
        self.sink = run.engine.sink
        self.budget = run.budget

    # -- the loop -----------------------------------------------------------------------------
    def run(self) -> AgentOutcome:
        options = self.run_state.options
        outcome = AgentOutcome()
        try:
            sandbox = self.run_state.engine.sandbox_factory(
                self.context, self.variables, {"DEFAULT_CHUNK_SIZE": options.chunk_size}
            )
        except Exception as exc:
            outcome.error = f"could not start the REPL: {exc}"
            return outcome
        messages = [
            {"role": "system", "content": prompts.build_system_prompt(self.context, options.chunk_size)},
            {
                "role": "user",
                "content": prompts.build_first_user_message(
                    self.query, self.context, self.memory.snapshot(), self.depth, options.max_recursion_depth
                ),
            },
        ]
        try:
            for _ in range(options.max_iterations):
                outcome.iterations += 1
                reply, node = self._model_turn(messages, "iteration")
                final, feedback = self._act_on_reply(reply, node, sandbox)
                self._finish(node)
                self._progress(outcome.iterations)
                if final is not None:
                    outcome.final = final
                    break
                messages += [{"role": "assistant", "content": reply}, {"role": "user", "content": feedback}]
            else:
                outcome.forced = True
                outcome.final = self._forced_final(messages, sandbox)
        except GuardTripped as exc:
            outcome.error = f"stopped by guard {exc.guard}: {exc}"
            outcome.final = outcome.final or self._partial_answer(sandbox)
        except ModelError as exc:
            outcome.error = f"model call failed: {exc}"
        finally:
            if self.export_variables:
                outcome.variables, outcome.dropped = self._safe_variables(sandbox)
            sandbox.close()
        return outcome

    def run_program(self, code: str, label: str) -> AgentOutcome:
        """Run a fixed root program in the same sandbox with the same API; no root model writes code."""
        outcome = AgentOutcome(iterations=1)
        options = self.run_state.options
        try:
            sandbox = self.run_state.engine.sandbox_factory(
                self.context,
                self.variables,
                {"DEFAULT_CHUNK_SIZE": options.chunk_size, "QUESTION": self.query},
            )
        except Exception as exc:
            outcome.error = f"could not start the REPL: {exc}"
            return outcome
        node = self.cursor.child(
            "iteration",
            self.depth,
            model=f"({label}: no root model)",
            prompt=f"{label} program (no root model wrote this code)",
        )
        self.sink.node_started(node)
        try:
            result = self._run_cell(code, TreeCursor(self.run_state.execution_id, node), sandbox)
            if result.final is not None:
                outcome.final = result.final
            else:
                outcome.error = f"the {label} program ended without FINAL: {result.error or 'no answer'}"
                node.status, node.error = "failed", outcome.error
        except GuardTripped as exc:
            outcome.error = f"stopped by guard {exc.guard}: {exc}"
        finally:
            self._finish(node)
            self._progress(1)
            if self.export_variables:
                outcome.variables, outcome.dropped = self._safe_variables(sandbox)
            sandbox.close()
        return outcome

    def _model_turn(self, messages: list[dict[str, str]], kind: str) -> tuple[str, TraceNode]:
        self.budget.check()
        node = self.cursor.child(kind, self.depth, model=self.model, prompt=messages[-1]["content"])
        earlier = self.run_state.request.recorded.get(node.id)
        if earlier is not None and earlier.status == "succeeded" and earlier.response is not None:
            self.budget.add_usage(earlier.input_tokens, earlier.output_tokens, earlier.cost_usd)
            node.response, node.input_tokens, node.output_tokens, node.cost_usd = (
                earlier.response,
                earlier.input_tokens,
                earlier.output_tokens,
                earlier.cost_usd,
            )
            node.started_at = earlier.started_at
            return earlier.response, node
        self.sink.node_started(node)
        try:
            reply = self.run_state.engine.model_client.complete(self.model, messages)
        except ModelError as exc:
            node.status, node.error, node.finished_at = "failed", str(exc), utcnow()
            self.sink.node_finished(node)
            raise
        self.budget.add_usage(reply.input_tokens, reply.output_tokens, reply.cost_usd, reply.cost_known)
        node.response = reply.text
        node.input_tokens, node.output_tokens, node.cost_usd = (
            reply.input_tokens,
            reply.output_tokens,
            reply.cost_usd,
        )
        return reply.text, node

    def _act_on_reply(self, reply: str, node: TraceNode, sandbox: Sandbox) -> tuple[str | None, str]:
        """Run every code cell of the reply; return (final answer or None, feedback for the model)."""
        cursor = TreeCursor(self.run_state.execution_id, node)
        outputs: list[str] = []
        cells = extract_code_cells(reply)
        for index, code in enumerate(cells, start=1):
            result = self._run_cell(code, cursor, sandbox)
            outputs.append(self._describe(index, result))
            if result.final is not None:
                return result.final, ""
            self.budget.check()
        bare = find_bare_final(reply)
        if bare is not None:
            kind, value = bare
            code = f"FINAL_VAR({value!r})" if kind == "var" else f"FINAL({value})"
            result = self._run_cell(code, cursor, sandbox)
            if result.final is not None:
                return result.final, ""
            if kind == "value":
                return value, ""
            outputs.append(self._describe(len(cells) + 1, result))
        if not cells and bare is None:
            return None, prompts.NO_CODE_NUDGE
        return None, prompts.format_cell_feedback(outputs)

    def _run_cell(self, code: str, cursor: TreeCursor, sandbox: Sandbox) -> CellResult:
        node = cursor.child("code", self.depth, code=code)
        self.sink.node_started(node)
        calls = TreeCursor(self.run_state.execution_id, node)
        result = sandbox.execute(code, lambda fn, args: self._handle_call(fn, args, calls))
        node.stdout, node.stderr, node.error = result.stdout, result.stderr, result.error
        node.response = result.final
        node.status = "failed" if result.error else "succeeded"
        node.finished_at = utcnow()
        self.sink.node_finished(node)
        return result

    def _describe(self, index: int, result: CellResult) -> str:
        parts = []
        if result.stdout:
            parts.append(result.stdout.rstrip("\n"))
        if result.stderr:
            parts.append(f"[stderr]\n{result.stderr.rstrip()}")
        if result.error:
            parts.append(f"[error]\n{result.error.rstrip()}")
        body = "\n".join(parts) if parts else "(no output)"
        return f"Output of code cell {index}:\n{truncate_output(body, self.run_state.options.output_limit)}"

    def _forced_final(self, messages: list[dict[str, str]], sandbox: Sandbox) -> str:
        messages = [*messages, {"role": "user", "content": prompts.FORCE_FINAL_PROMPT}]
        reply, node = self._model_turn(messages, "iteration")
        node.error = "forced final answer: max_iterations reached"
        final, _ = self._act_on_reply(reply, node, sandbox)
        self._finish(node)
        return final if final is not None else reply.strip()

    def _partial_answer(self, sandbox: Sandbox) -> str | None:
        """After a guard trips: whatever the code left in answer["content"], if anything."""
        try:
            variables, _ = sandbox.get_variables()
        except Exception:
            return None
        answer = variables.get("answer")
        if isinstance(answer, dict) and answer.get("content"):
            return str(answer["content"])
        return None

    def _safe_variables(self, sandbox: Sandbox) -> tuple[dict[str, Any], list[str]]:
        try:
            variables, dropped = sandbox.get_variables()
        except Exception as exc:
            return {}, [f"(could not read variables: {exc})"]
        variables.pop("answer", None)
        return variables, dropped

    def _finish(self, node: TraceNode) -> None:
        node.status = "succeeded" if node.status == "running" else node.status
        node.finished_at = utcnow()
        self.sink.node_finished(node)
        self.sink.memory_snapshot(self.run_state.execution_id, node.id, self.memory.snapshot())

    def _progress(self, iterations: int) -> None:
        if self.depth:
            return
        b = self.budget
        self.sink.execution_progress(
            self.run_state.execution_id,
            {
                "iterations": iterations,
                "total_input_tokens": b.input_tokens,
                "total_output_tokens": b.output_tokens,
                "total_cost_usd": b.cost_usd,
                "llm_calls": b.model_calls,
            },
        )

    # -- the REPL API, worker side ----------------------------------------------------------
    def _handle_call(self, fn: str, args: dict[str, Any], cursor: TreeCursor) -> Any:
        try:
            return self._dispatch_call(fn, args, cursor)
        except GuardTripped as exc:
            raise CallRejected(f"execution stopped by guard {exc.guard}: {exc}") from None
        except MemoryError_ as exc:
            raise CallRejected(str(exc)) from None

    def _dispatch_call(self, fn: str, args: dict[str, Any], cursor: TreeCursor) -> Any:
        model = args.get("model")
        if fn == "llm_query":
            return self._llm_queries([_text(args.get("prompt"), "prompt")], model, cursor)[0]
        if fn == "llm_query_batched":
            return self._llm_queries(_texts(args.get("prompts")), model, cursor)
        if fn == "rlm_query":
            prompt = _text(args.get("prompt"), "prompt")
            return self._rlm_queries(
                [prompt], [args.get("context")], model, args.get("inherit_memory"), cursor
            )[0]
        if fn == "rlm_query_batched":
            batch = _texts(args.get("prompts"))
            contexts = args.get("contexts") or [None] * len(batch)
            if not isinstance(contexts, list) or len(contexts) != len(batch):
                raise CallRejected("contexts must be a list as long as prompts")
            return self._rlm_queries(batch, contexts, model, args.get("inherit_memory"), cursor)
        if fn == "memory_read":
            return self.memory.read(_text(args.get("label"), "label"))
        if fn == "memory_blocks":
            return self.memory.snapshot()
        if fn == "memory_set":
            self.memory.set(_text(args.get("label"), "label"), _text(args.get("text"), "text"))
            return None
        if fn == "memory_append":
            self.memory.append(_text(args.get("label"), "label"), _text(args.get("text"), "text"))
            return None
        if fn == "memory_replace":
            self.memory.replace(
                _text(args.get("label"), "label"),
                _text(args.get("old"), "old"),
                _text(args.get("new"), "new"),
            )
            return None
        raise CallRejected(f"unknown REPL function {fn!r}")

    def _llm_queries(self, prompt_list: list[str], model: str | None, cursor: TreeCursor) -> list[str]:
        model = model or self.run_state.request.sub_model
        self.budget.reserve_sub_calls(len(prompt_list))
        parent = cursor.parent
        assert parent is not None
        calls = [
            LLMCall(
                execution_id=self.run_state.execution_id,
                node_id=node_id,
                parent_id=parent.id,
                path=path,
                depth=self.depth + 1,
                seq=seq,
                model=model,
                prompt=prompt,
            )
            for (seq, path, node_id), prompt in zip(cursor.next(len(prompt_list)), prompt_list, strict=True)
        ]
        outcomes = self._replayed_or_dispatched(calls)
        for o in outcomes:
            self.budget.add_usage(o.input_tokens, o.output_tokens, o.cost_usd)
        return [o.as_repl_value() for o in outcomes]

    def _replayed_or_dispatched(self, calls: list[LLMCall]) -> list[LLMCallOutcome]:
        """Sub-calls an earlier attempt already finished come from its trace; the rest are dispatched."""
        recorded = self.run_state.request.recorded
        outcomes: dict[str, LLMCallOutcome] = {}
        for call in calls:
            earlier = recorded.get(call.node_id)
            if earlier is not None and earlier.status == "succeeded" and earlier.response is not None:
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
            fresh = self.run_state.engine.dispatcher.run_llm_calls(missing, timeout=self.budget.remaining_seconds())
            outcomes.update((o.node_id, o) for o in fresh)
        return [outcomes[c.node_id] for c in calls]

    def _rlm_queries(
        self,
        prompt_list: list[str],
        contexts: list[Any],
        model: str | None,
        inherit_memory: bool | None,
        cursor: TreeCursor,
    ) -> list[str]:
        if self.depth + 1 > self.run_state.options.max_recursion_depth:
            return self._llm_queries(prompt_list, model, cursor)
        self.budget.reserve_sub_calls(len(prompt_list))
        inherit = self.run_state.options.inherit_memory if inherit_memory is None else bool(inherit_memory)
        child_model = model or self.model
        before = self.memory.snapshot()
        children = []
        for prompt, context in zip(prompt_list, contexts, strict=True):
            node = cursor.child("child_rlm", self.depth + 1, model=child_model, prompt=prompt)
            self.sink.node_started(node)
            children.append(
                Agent(
                    run=self.run_state,
                    depth=self.depth + 1,
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
                max_workers=min(len(children), 16), thread_name_prefix="rlm-child"
            ) as pool:
                outcomes = list(pool.map(lambda agent: agent.run(), children))
        answers = []
        for child, outcome in zip(children, outcomes, strict=True):
            if inherit:
                self.memory.merge_learnings(child.memory.snapshot(), before)
            node = child.node
            node.response, node.error = outcome.final, outcome.error
            node.status = "succeeded" if outcome.final is not None and not outcome.error else "failed"
            node.finished_at = utcnow()
            self.sink.node_finished(node)
            self.sink.memory_snapshot(self.run_state.execution_id, node.id, self.memory.snapshot())
            answers.append(
                outcome.final if outcome.final is not None else f"Error: {outcome.error or 'no answer'}"
            )
        self.budget.check()
        return answers


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise CallRejected(f"{name} must be a str, not {type(value).__name__}")
    return value


def _texts(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CallRejected("prompts must be a list of str")
    return value
