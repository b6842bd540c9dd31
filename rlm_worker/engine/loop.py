"""The agent loop: prompt the model, run its code in the REPL, feed the output back, until FINAL.

One `Agent` is one loop (the root, or a recursive `rlm_query` child with its own REPL). The
`Engine` wires a root agent to the ports and turns its outcome into an `ExecutionResult`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rlm_worker.engine import compaction, prompts, repl_names
from rlm_worker.engine.budget import Budget, GuardTripped
from rlm_worker.engine.compaction import CompactionPolicy
from rlm_worker.engine.memory import MemoryBlocks
from rlm_worker.engine.model_policy import ModelPolicy
from rlm_worker.engine.options import ExecutionOptions
from rlm_worker.engine.outcome import answer_found
from rlm_worker.engine.parsing import ProseFinal, extract_code_cells, find_bare_final, truncate_output
from rlm_worker.engine.ports import (
    Dispatcher,
    ModelClient,
    ModelError,
    Sandbox,
    SandboxFactory,
    TraceSink,
)
from rlm_worker.engine.repl_api import ReplCalls
from rlm_worker.engine.repl_names import REPL_FUNCTIONS
from rlm_worker.engine.sandbox_slots import SandboxSlots, SlotPool
from rlm_worker.engine.session_history import EarlierRuns
from rlm_worker.engine.tools import ToolBox
from rlm_worker.engine.tree import TreeCursor
from rlm_worker.engine.types import CellResult, TraceNode, utcnow
from rlm_worker.engine.variables import strict_json_variables


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
    #: A session's earlier runs (`context_0 … context_<n>` and `history` in the root's REPL).
    earlier_runs: EarlierRuns = field(default_factory=EarlierRuns)


@dataclass
class ExecutionResult:
    status: str
    final_answer: str | None
    #: False when the execution succeeded with "NONE" (the context does not answer); None unless succeeded.
    answer_found: bool | None
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
    """Runs executions. Holds only ports; one instance serves many executions and threads.

    `model_policy`: the models the REPL may name (None: any; the model client checks again).
    `max_sandboxes_per_execution` and `process_sandboxes` (the worker process's shared pool)
    cap live REPL processes; see `sandbox_slots`. `compaction`: when an agent's messages are
    summarised (None: never).
    """

    def __init__(
        self,
        model_client: ModelClient,
        dispatcher: Dispatcher,
        sink: TraceSink,
        sandbox_factory: SandboxFactory,
        model_policy: ModelPolicy | None = None,
        max_sandboxes_per_execution: int | None = None,
        process_sandboxes: SlotPool | None = None,
        on_guard: Callable[[str], None] | None = None,
        compaction: CompactionPolicy | None = None,
        tools: ToolBox | None = None,
    ) -> None:
        self.model_client = model_client
        self.dispatcher = dispatcher
        self.sink = sink
        self.sandbox_factory = sandbox_factory
        self.model_policy = model_policy or ModelPolicy.allow_all()
        self.max_sandboxes_per_execution = max_sandboxes_per_execution
        self.process_sandboxes = process_sandboxes or SlotPool(None, "MAX_SANDBOXES_PER_PROCESS")
        #: Told the name of a cap that held work back (a sandbox cap); the adapters count them.
        self.on_guard = on_guard or (lambda guard: None)
        self.compaction = compaction
        #: The operator's custom tools (engine/tools.py), offered to every agent's REPL.
        self.tools = tools or ToolBox()

    def run(self, request: ExecutionRequest, is_cancelled: Any = None) -> ExecutionResult:
        budget = Budget(request.options, is_cancelled)
        slots = SandboxSlots(self.max_sandboxes_per_execution, self.process_sandboxes)
        memory = MemoryBlocks(request.memory)
        root = TreeCursor(request.execution_id, None).child(
            "root", 0, model=request.root_model, prompt=request.user_query
        )
        self.sink.node_started(root)
        self.sink.memory_snapshot(request.execution_id, root.id, memory.snapshot())
        variables, unloadable = strict_json_variables(request.variables)
        agent = Agent(
            run=_RunState(self, request, budget, slots),
            depth=0,
            node=root,
            query=request.user_query,
            context=request.context,
            model=request.root_model,
            memory=memory,
            variables=variables,
            export_variables=request.keep_variables,
            earlier_runs=request.earlier_runs,
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
        notes = []
        if unloadable:
            notes.append(
                f"dropped from the session (stored values that are not JSON): {', '.join(unloadable)}"
            )
        if outcome.dropped:
            notes.append(f"not kept for the session (not JSON-serialisable): {', '.join(outcome.dropped)}")
        root.stderr = "\n".join(notes) or root.stderr
        self.sink.node_finished(root)
        return ExecutionResult(
            status=status,
            final_answer=outcome.final,
            answer_found=answer_found(status, outcome.final),
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


#: The guards that stop an execution rather than fail it, and the status they give.
STOP_STATUS = {"cancelled": "cancelled", "timeout_seconds": "timed_out"}


def _status_for(outcome: AgentOutcome, guard: str | None) -> str:
    if guard in STOP_STATUS:
        return STOP_STATUS[guard]
    if outcome.final is not None and guard is None:
        return "succeeded"
    return "failed"


@dataclass
class _RunState:
    """What every agent of one execution tree shares."""

    engine: Engine
    request: ExecutionRequest
    budget: Budget
    slots: SandboxSlots

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
        earlier_runs: EarlierRuns | None = None,
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
        self.earlier_runs = earlier_runs or EarlierRuns()
        self.compactions = 0
        #: How many messages the last compaction left: the next needs newer turns than these.
        self.compacted_length = 2
        self.cursor = TreeCursor(run.execution_id, node)
        self.sink = run.engine.sink
        self.budget = run.budget

    # -- a slot for the REPL ------------------------------------------------------------------
    def run(self) -> AgentOutcome:
        """The loop, in a REPL of its own if a slot is free; a child without one is a plain llm_query."""
        return self._with_slot(self._run_loop)

    def run_program(self, code: str, label: str) -> AgentOutcome:
        """Run a fixed root program in the same sandbox with the same API; no root model writes code."""
        return self._with_slot(lambda: self._run_program(code, label))

    def _with_slot(self, body: Callable[[], AgentOutcome]) -> AgentOutcome:
        """Run `body` holding a REPL slot: a root waits for one, a child without one runs as a leaf call."""
        slots = self.run_state.slots
        if self.depth:
            slot = slots.try_take()  # a child never waits: its parent holds a slot meanwhile
            if slot is None:
                self.run_state.engine.on_guard(slots.full_pool().name.lower())
                return self._run_without_repl(slots.describe_refusal())
        else:
            try:
                slot = slots.wait_for(self.budget.remaining_seconds, self.budget.check)
            except GuardTripped as exc:
                return AgentOutcome(error=f"stopped by guard {exc.guard}: {exc}")
            if slot is None:
                self.run_state.engine.on_guard(slots.process.name.lower())
                return AgentOutcome(
                    error="no REPL process could start in this worker within the time limit "
                    f"({slots.process.held} alive, {slots.process.name}={slots.process.limit})"
                )
        try:
            return body()
        finally:
            slot.release()

    def _run_without_repl(self, why: str) -> AgentOutcome:
        """A child that found no free slot: its question goes to one leaf call, and the trace says so."""
        self.node.stdout = f"no sandbox slot free ({why}): answered by one plain llm_query, without a REPL"
        prompt = self.query
        if self.context != self.query:
            text = self.context if isinstance(self.context, str) else json.dumps(self.context, default=str)
            prompt = f"{self.query}\n\nContext:\n{text}"
        try:
            outcome = ReplCalls(self, self.cursor).plain_llm_call(prompt, self.model)
        except GuardTripped as exc:
            return AgentOutcome(error=f"stopped by guard {exc.guard}: {exc}")
        if outcome.error is not None:
            return AgentOutcome(error=outcome.error)
        return AgentOutcome(final=outcome.text or "")

    # -- the loop -----------------------------------------------------------------------------
    def _run_loop(self) -> AgentOutcome:
        options = self.run_state.options
        outcome = AgentOutcome()
        try:
            sandbox = self.run_state.engine.sandbox_factory(
                self.context, self.variables, self._constants({"DEFAULT_CHUNK_SIZE": options.chunk_size})
            )
        except Exception as exc:
            outcome.error = f"could not start the REPL: {exc}"
            if self.export_variables:  # the session keeps what it had
                outcome.variables = dict(self.variables)
            return outcome
        messages = [
            {
                "role": "system",
                "content": prompts.build_system_prompt(
                    self.context, options.chunk_size, self.run_state.engine.tools.prompt_section()
                ),
            },
            {
                "role": "user",
                "content": prompts.build_first_user_message(
                    self.query,
                    self.context,
                    self.memory.snapshot(),
                    self.depth,
                    options.max_recursion_depth,
                    session_note=self.earlier_runs.describe(),
                ),
            },
        ]
        try:
            for _ in range(options.max_iterations):
                messages = self._compacted(messages, sandbox)
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
                outcome.final = self._forced_final(self._compacted(messages, sandbox), sandbox)
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

    def _run_program(self, code: str, label: str) -> AgentOutcome:
        outcome = AgentOutcome(iterations=1)
        options = self.run_state.options
        try:
            sandbox = self.run_state.engine.sandbox_factory(
                self.context,
                self.variables,
                self._constants(
                    {
                        "DEFAULT_CHUNK_SIZE": options.chunk_size,
                        "QUESTION": self.query,
                        "TIMEOUT_SECONDS": options.timeout_seconds,
                    }
                ),
            )
        except Exception as exc:
            outcome.error = f"could not start the REPL: {exc}"
            if self.export_variables:  # the session keeps what it had
                outcome.variables = dict(self.variables)
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
            stopped = self._stopped_by() if result.error else None
            if stopped is not None:
                # Cancelled or out of time: that is the one reason, not the cell's broken call.
                outcome.error = f"stopped by guard {stopped.guard}: {stopped}"
                node.status, node.error = STOP_STATUS[stopped.guard], outcome.error
            elif result.final is not None:
                outcome.final = result.final
            else:
                # The program's own exception (e.g. "a sub-call failed: ...") is the reason; its
                # traceback stays on the code node.
                reason = (result.error or "no answer").strip().splitlines()[-1]
                outcome.error = f"the {label} program ended without FINAL: {reason}"
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

    def _constants(self, constants: dict[str, Any]) -> dict[str, Any]:
        """The REPL's constants, with the session's earlier inputs and history when there are any."""
        if self.earlier_runs.runs:
            constants[repl_names.SESSION_CONSTANT] = self.earlier_runs.constant()
        return constants

    def _compacted(self, messages: list[dict[str, str]], sandbox: Sandbox) -> list[dict[str, str]]:
        """`messages`, or, once they near the model's window, the first two and a summary of the rest.

        One model call (a `compaction` node) writes the summary; the turns it replaces and the
        summary go whole into the REPL's `compaction_history` (a cell under that node).
        """
        policy = self.run_state.engine.compaction
        if policy is None or len(messages) <= self.compacted_length:
            return messages
        reached = policy.due(self.model, messages)
        if reached is None:
            return messages
        tokens, limit = reached
        self.compactions += 1
        request = [*messages, {"role": "user", "content": compaction.SUMMARY_REQUEST}]
        summary, node = self._model_turn(request, "compaction")
        older = messages[2:]
        entries = [{"type": "turns", "messages": older}, {"type": "summary", "content": summary}]
        cursor = TreeCursor(self.run_state.execution_id, node)
        stored = self._run_cell(
            f"compaction_history.extend({entries!r})",
            cursor,
            sandbox,
            shown=f"compaction_history.extend(<the {len(older)} messages replaced, and their summary>)",
        )
        node.stdout = (
            f"{tokens:,} tokens reached {limit:,} ({policy.threshold:.0%} of {self.model}'s window): "
            f"{len(older)} messages replaced by a summary of {len(summary):,} characters "
            f"(compaction {self.compactions})"
        )
        if stored.error:
            node.status, node.error = "failed", f"the turns could not be kept in compaction_history: {stored.error}"
        self._finish(node)
        kept = [
            *messages[:2],
            {"role": "assistant", "content": summary},
            {"role": "user", "content": compaction.continue_after(self.compactions)},
        ]
        self.compacted_length = len(kept)
        return kept

    def _model_turn(self, messages: list[dict[str, str]], kind: str) -> tuple[str, TraceNode]:
        self.budget.check()
        node = self.cursor.child(kind, self.depth, model=self.model, prompt=messages[-1]["content"])
        earlier = self.run_state.request.recorded.get(node.id)
        # A reply an earlier attempt paid for, to the same prompt (a diverged replay asks anew).
        if earlier is not None and earlier.response is not None and earlier.prompt == node.prompt:
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
        self.sink.node_started(node)  # record the paid reply now: a resumed run must not pay again
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
            final, failed = self._prose_final(bare, cursor, sandbox)
            if final is not None:
                return final, ""
            if failed is not None:
                outputs.append(self._describe(len(cells) + 1, failed))
        if not cells and bare is None:
            return None, prompts.NO_CODE_NUDGE
        return None, prompts.format_cell_feedback(outputs)

    def _prose_final(
        self, bare: ProseFinal, cursor: TreeCursor, sandbox: Sandbox
    ) -> tuple[str | None, CellResult | None]:
        """A FINAL written outside a code block, as data: (the answer or None, the failed lookup).

        Quoted or other text is the answer as written; nothing in it runs. A name (FINAL(x) or
        FINAL_VAR(x)) is looked up with FINAL_VAR, the one thing run, and only for a name that is
        not a REPL function and a variable holding plain data (a function or object of the code's
        answers as its name); a bare name that is no such variable is the answer as text.
        """
        if bare.kind == "text" or (bare.kind == "name" and bare.value in REPL_FUNCTIONS):
            return bare.value, None
        if bare.kind == "var" and bare.value in REPL_FUNCTIONS:
            return None, CellResult(error=f"FINAL_VAR: {bare.value} is a REPL function, not a variable")
        lookup = f"FINAL_VAR({bare.value!r}, data_only=True)"  # plain data, never a repr
        if bare.kind == "name":  # no such variable: the name is the answer, and the lookup no error
            lookup = f"try:\n    {lookup}\nexcept NameError:\n    pass"
        result = self._run_cell(lookup, cursor, sandbox)
        if result.final is not None:
            return result.final, None
        if bare.kind == "name":
            return bare.value, None
        return None, result

    def _run_cell(
        self, code: str, cursor: TreeCursor, sandbox: Sandbox, shown: str | None = None
    ) -> CellResult:
        """Run `code` as a `code` node under `cursor` (`shown`: what the trace shows instead of it)."""
        node = cursor.child("code", self.depth, code=shown or code)
        self.sink.node_started(node)
        calls = ReplCalls(self, TreeCursor(self.run_state.execution_id, node))
        result = sandbox.execute(code, calls.handle)
        node.stdout, node.stderr, node.error = result.stdout, result.stderr, result.error
        node.response = result.final
        node.status = "failed" if result.error else "succeeded"
        stopped = self._stopped_by() if result.error else None
        if stopped is not None:
            # The cell's traceback is the stop's echo, not a fault of the code: it is kept with the
            # cell's stderr, and the node's error says what stopped it.
            node.status = STOP_STATUS[stopped.guard]
            node.stderr = "\n".join(part for part in (node.stderr, result.error) if part)
            node.error = f"stopped by guard {stopped.guard}: {stopped}"
        node.finished_at = utcnow()
        self.sink.node_finished(node)
        return result

    def _stopped_by(self) -> GuardTripped | None:
        """The stop (cancellation, the time limit) under way, if any: a cell that failed then
        failed because of it (its batch was cut short, or its REPL killed)."""
        try:
            self.budget.check()
        except GuardTripped:
            pass
        tripped = self.budget.tripped
        return tripped if tripped is not None and tripped.guard in STOP_STATUS else None

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
        # The REPL's own names (`answer`, a session's `context_<n>`, ...) are never the session's.
        variables = {k: v for k, v in variables.items() if not repl_names.is_reserved(k)}
        kept, not_json = strict_json_variables(variables)
        return kept, dropped + not_json

    def _finish(self, node: TraceNode) -> None:
        node.status = "succeeded" if node.status == "running" else node.status
        node.finished_at = utcnow()
        self.sink.node_finished(node)
        self.sink.memory_snapshot(self.run_state.execution_id, node.id, self.memory.snapshot())

    def _progress(self, iterations: int) -> None:
        if self.depth:
            return
        # Only the count of iterations: calls, tokens and cost are read from the trace as it grows.
        self.sink.execution_progress(self.run_state.execution_id, {"iterations": iterations})

    def child(self, node: TraceNode, query: str, context: Any, model: str, memory: MemoryBlocks) -> Agent:
        """A recursive child agent one level deeper, sharing this execution's budget and ports."""
        return Agent(
            run=self.run_state,
            depth=self.depth + 1,
            node=node,
            query=query,
            context=context,
            model=model,
            memory=memory,
        )
