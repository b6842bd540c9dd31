"""Leaf sub-calls: run a batch of model calls concurrently and record one trace node per call.

Shared by every dispatcher (the Celery `rlm.llm` task, the embedded thread pool), so a leaf
call is traced the same way everywhere.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from rlm_worker.engine.ports import ModelClient, ModelError, TraceSink
from rlm_worker.engine.types import LLMCall, LLMCallOutcome, TraceNode, utcnow

_pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="rlm-subcall")


def _run_one(call: LLMCall, client: ModelClient) -> tuple[LLMCallOutcome, TraceNode]:
    node = TraceNode(
        id=call.node_id,
        execution_id=call.execution_id,
        parent_id=call.parent_id,
        kind="llm_call",
        path=call.path,
        depth=call.depth,
        seq=call.seq,
        model=call.model,
        prompt=call.prompt,
    )
    try:
        reply = client.complete(call.model, [{"role": "user", "content": call.prompt}])
    except ModelError as exc:
        outcome = LLMCallOutcome(node_id=call.node_id, text=None, error=str(exc), model=call.model)
        node.status, node.error = "failed", str(exc)
    except Exception as exc:  # a bug in a provider adapter must not take the batch down
        message = f"{type(exc).__name__}: {exc}"
        outcome = LLMCallOutcome(node_id=call.node_id, text=None, error=message, model=call.model)
        node.status, node.error = "failed", message
    else:
        outcome = LLMCallOutcome(
            node_id=call.node_id,
            text=reply.text,
            input_tokens=reply.input_tokens,
            output_tokens=reply.output_tokens,
            cost_usd=reply.cost_usd,
            model=reply.model,
        )
        node.status = "succeeded"
        node.response = reply.text
        node.input_tokens, node.output_tokens, node.cost_usd = (
            reply.input_tokens,
            reply.output_tokens,
            reply.cost_usd,
        )
    node.finished_at = utcnow()
    return outcome, node


def execute_llm_calls(calls: list[LLMCall], client: ModelClient, sink: TraceSink) -> list[LLMCallOutcome]:
    """Run the calls in parallel, write their trace nodes in one bulk write, return outcomes in order."""
    if not calls:
        return []
    if len(calls) == 1:
        results = [_run_one(calls[0], client)]
    else:
        results = list(_pool.map(lambda c: _run_one(c, client), calls))
    sink.nodes_recorded([node for _, node in results])
    return [outcome for outcome, _ in results]
