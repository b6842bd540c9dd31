"""`max_concurrent_subcalls` in the engine: the gate holds the limit and lets a stop through."""

from __future__ import annotations

import threading
import time

from tests.engine.conftest import ScriptedModel, fence

FAN_OUT = "answers = llm_query_batched([f'q {i}' for i in range(20)])\nFINAL(str(len(answers)))"


class SlowSub(ScriptedModel):
    """Sub-calls take `seconds` each; counts how many run at once."""

    def __init__(self, seconds: float) -> None:
        super().__init__(lambda messages, model: fence(FAN_OUT), sub=lambda prompt: "leaf")
        self.seconds, self.running, self.peak = seconds, 0, 0
        self._count = threading.Lock()

    def complete(self, model, messages):
        if messages[0]["role"] == "system":
            return super().complete(model, messages)
        with self._count:
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            time.sleep(self.seconds)  # the provider's latency, at the outer edge
            return super().complete(model, messages)
        finally:
            with self._count:
                self.running -= 1


def test_the_gate_holds_the_limit(run):
    model = SlowSub(0.05)
    result, _ = run(model, "text", max_concurrent_subcalls=4)
    assert result.status == "succeeded" and result.final_answer == "20"
    assert model.peak == 4 and result.sub_calls == 20


def test_a_cancel_ends_a_gated_fan_out_at_once(run):
    model = SlowSub(0.3)  # 20 calls two at a time: 3 s if nothing stopped them
    cancelled = threading.Event()
    threading.Timer(0.6, cancelled.set).start()
    started = time.monotonic()
    result, sink = run(model, "text", max_concurrent_subcalls=2, is_cancelled=cancelled.is_set)
    assert result.status == "cancelled"
    assert time.monotonic() - started < 2.0
    assert model.peak <= 2
    assert sum(1 for kind, _ in model.calls if kind == "sub") < 10
