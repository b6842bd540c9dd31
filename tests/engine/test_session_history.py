"""A session's earlier runs in the REPL: `context_<i>` per run (each distinct input sent once,
this run's own as `context`, a left-out one as None), `history` and `history_<i>`, and the
runner choosing which inputs to load when they do not all fit."""

from __future__ import annotations

import json
from datetime import timedelta

from rlm_worker.dispatchers import InProcessDispatcher
from rlm_worker.engine.loop import Engine, ExecutionRequest
from rlm_worker.engine.memory_sink import InMemoryTraceSink
from rlm_worker.engine.session_history import NOT_LOADED, THIS_RUNS_INPUT, EarlierRun, EarlierRuns
from rlm_worker.engine.types import utcnow
from tests.engine.conftest import ScriptedModel, fence

PROBE = (
    "import json\n"
    "FINAL(json.dumps([context_0, context_1, context_2, context_3 is context, "
    "[run['question'] for run in history], history_1[0]['content']]))"
)


def test_each_earlier_input_and_run_is_a_repl_name(sandbox_factory):
    seen = []

    def root(messages, _):
        seen.append(messages[1]["content"])
        return fence(PROBE)

    model = ScriptedModel(root)
    sink = InMemoryTraceSink()
    runs = [EarlierRun(f"question {i}", f"answer {i}", "succeeded", [{"role": "user", "content": f"m{i}"}]) for i in range(3)]
    request = ExecutionRequest(
        execution_id="exec-session",
        user_query="What changed?",
        context="this run's input",
        root_model="root-model",
        sub_model="sub-model",
        earlier_runs=EarlierRuns(contexts=["the second input"], order=[NOT_LOADED, 0, THIS_RUNS_INPUT], runs=runs),
    )
    result = Engine(model, InProcessDispatcher(model, sink), sink, sandbox_factory).run(request)
    assert result.status == "succeeded", result.error
    assert json.loads(result.final_answer) == [
        None,
        "the second input",
        "this run's input",
        True,
        ["question 0", "question 1", "question 2"],
        "m1",
    ]
    assert "continues a session of 3 earlier runs" in seen[0]
    assert "`context_0` is None" in seen[0]
    assert "the second input" not in seen[0]


def test_the_runner_loads_the_newest_inputs_first_while_they_fit(tmp_path):
    from rlm_api.cli.local_app import open_app
    from rlm_api.database import db
    from rlm_shared.contexts import store_context
    from rlm_shared.models import Execution, Session
    from rlm_worker.runner import earlier_runs

    app = open_app(f"sqlite:///{tmp_path / 'runs.db'}", quiet=True)
    with app.app_context():
        session = Session(name="s", memory={}, variables={})
        db.session.add(session)
        db.session.flush()
        start = utcnow()

        def execution(text: str, minutes: int, status: str = "succeeded") -> Execution:
            row = Execution(
                session_id=session.id,
                context_id=store_context(text).id,
                user_query=f"about {text}",
                root_model="m",
                sub_model="m",
                status=status,
                final_answer=f"answer {text}",
                created_at=start + timedelta(minutes=minutes),
            )
            db.session.add(row)
            db.session.flush()
            return row

        execution("x" * 30, 0)
        execution("y" * 20, 1)
        execution("z" * 25, 2)
        execution("x" * 30, 3)  # the first input again: loaded once
        execution("still going", 4, status="running")  # no outcome yet: not an earlier run
        current = execution("z" * 25, 5, status="running")
        db.session.commit()

        runs = earlier_runs(current, budget_chars=40)

    assert [run.question for run in runs.runs] == [f"about {t}" for t in ("x" * 30, "y" * 20, "z" * 25, "x" * 30)]
    # Newest first: the fourth run's input (30) fits, the second's (20) would not; the third's
    # input is this run's own.
    assert runs.contexts == ["x" * 30]
    assert runs.order == [0, NOT_LOADED, THIS_RUNS_INPUT, 0]
