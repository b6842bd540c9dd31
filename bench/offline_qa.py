"""The offline question set: how well `rlm run` answers with nothing but the bundled local model.

Questions: `samples/questions.json` over the two bundled samples (dates, names, numbers,
definitions, lists, questions worded unlike the text, and questions the text does not answer).
Each runs through the real engine, the real sandbox and the local model, with the built-in
strategy the offline plan uses and the chunk size it sets, exactly as `rlm run FILE -q ...` does
with no provider configured.

Scoring: an answerable question is right when the answer matches one of its accepted patterns;
an absent one is right when no answer is found (NONE), and any answer to it counts as invented.

Variants (`--variants`) switch off steps of the `search` strategy to measure what each buys:
`lexical` answers with the sentences that cover the question's words and asks no model;
`expansion` adds the words the local model suggests when a word of the question is missing
from the text; `votes` also has the model read the best paragraphs and vote for the sentence
its reply repeats (the program before stand-ins by meaning); `full` (the shipped strategy) adds
the embedding model: the text's words nearest in meaning stand in for missing words, the
candidates' similarity to the question weighs in, and bounded widening reads a few more paragraphs.

Run: `python -m bench.offline_qa` (`--limit N` for the first N questions of each sample,
`--markdown` for the BENCHMARKS.md table, `--json PATH` for every answer).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
QUESTIONS = SAMPLES / "questions.json"
MODEL = "local/smollm2"
#: variant -> the strategy's switches (`search.py` reads USE_EXPANSION, USE_MEANING and USE_VOTES).
VARIANTS = {
    "lexical": {"USE_EXPANSION": False, "USE_MEANING": False, "USE_VOTES": False},
    "expansion": {"USE_EXPANSION": True, "USE_MEANING": False, "USE_VOTES": False},
    "votes": {"USE_EXPANSION": True, "USE_MEANING": False, "USE_VOTES": True},
    "full": {"USE_EXPANSION": True, "USE_MEANING": True, "USE_VOTES": True},
}
TARGETS = {"answerable": 0.85, "invented": 0, "median_seconds": 10.0}


@dataclass(frozen=True)
class Question:
    id: str
    document: str
    kind: str
    question: str
    accept: tuple[str, ...]

    @property
    def answerable(self) -> bool:
        return bool(self.accept)


@dataclass
class Outcome:
    variant: str
    id: str
    kind: str
    answerable: bool
    verdict: str  # right, missed (no answer found), wrong, invented, failed
    answer: str | None
    seconds: float
    sub_calls: int


def load_questions(path: Path = QUESTIONS, limit: int | None = None) -> list[Question]:
    """The question set; with `limit`, the first `limit` answerable and absent questions of each sample."""
    items = [
        Question(**{**q, "accept": tuple(q["accept"])}) for q in json.loads(path.read_text())["questions"]
    ]
    if limit is None:
        return items
    kept: list[Question] = []
    for document in dict.fromkeys(q.document for q in items):
        for answerable in (True, False):
            kept += [q for q in items if q.document == document and q.answerable == answerable][:limit]
    return kept


def verdict(question: Question, status: str, answer_found: bool | None, answer: str | None) -> str:
    if status != "succeeded":
        return "failed"
    if not answer_found:
        return "missed" if question.answerable else "right"
    if not question.answerable:
        return "invented"
    ok = any(re.search(pattern, answer or "", re.IGNORECASE) for pattern in question.accept)
    return "right" if ok else "wrong"


def strategy_program(variant: str) -> str:
    """The shipped `search` program with the variant's steps switched off."""
    from rlm_shared.strategies import get_strategy

    program = get_strategy("search")
    for name, value in VARIANTS[variant].items():
        line = f"{name} = True"
        assert line in program, f"search.py no longer sets {line!r}"
        program = program.replace(line, f"{name} = {value}", 1)
    return program


class RememberedReplies:
    """The local model, with its replies kept in a JSON file by prompt: the model is deterministic
    (temperature 0, fixed seed), so a prompt asked before gets the same reply without the wait.
    For working on the strategy only: times then measure the engine, not the model."""

    def __init__(self, client, path: Path) -> None:
        self.client = client
        self.path = path
        self.replies = json.loads(path.read_text()) if path.exists() else {}
        self.lock = threading.Lock()

    def complete(self, model: str, messages: list[dict[str, str]]):
        from rlm_worker.engine.types import ModelReply

        key = json.dumps([model, messages])
        with self.lock:
            known = self.replies.get(key)
        if known is not None:
            return ModelReply(**known)
        reply = self.client.complete(model, messages)
        with self.lock:
            self.replies[key] = asdict(reply)
            self.path.write_text(json.dumps(self.replies))
        return reply


def make_engine(remembered: Path | None = None):
    """The real engine as embedded mode builds it (real sandbox, local model), trace in memory."""
    from rlm_worker.dispatchers import InProcessDispatcher
    from rlm_worker.engine.llm import LiteLLMClient
    from rlm_worker.engine.loop import Engine
    from rlm_worker.engine.memory_sink import InMemoryTraceSink
    from rlm_worker.sandbox import SandboxConfig, make_sandbox_factory

    sink = InMemoryTraceSink()
    client = LiteLLMClient(max_retries=0)
    if remembered is not None:
        client = RememberedReplies(client, remembered)
    return Engine(client, InProcessDispatcher(client, sink), sink, make_sandbox_factory(SandboxConfig()))


def ask(engine, question: Question, variant: str, index: int) -> Outcome:
    from rlm_shared.strategies import LOCAL_CHUNK_SIZE
    from rlm_worker.engine.loop import ExecutionRequest
    from rlm_worker.engine.options import ExecutionOptions

    request = ExecutionRequest(
        execution_id=f"offline-qa-{variant}-{index}",
        user_query=question.question,
        context=(SAMPLES / question.document).read_text(encoding="utf-8"),
        root_model="(strategy search)",
        sub_model=MODEL,
        options=ExecutionOptions(chunk_size=LOCAL_CHUNK_SIZE),
        root_code=strategy_program(variant),
        root_code_label="strategy search",
    )
    started = time.perf_counter()
    result = engine.run(request)
    answer = result.final_answer if result.status == "succeeded" else f"({result.status}: {result.error})"
    return Outcome(
        variant=variant,
        id=question.id,
        kind=question.kind,
        answerable=question.answerable,
        verdict=verdict(question, result.status, result.answer_found, result.final_answer),
        answer=answer,
        seconds=round(time.perf_counter() - started, 2),
        sub_calls=result.sub_calls,
    )


def summarize(outcomes: list[Outcome]) -> dict[str, dict[str, float]]:
    rows: dict[str, dict[str, float]] = {}
    for variant in dict.fromkeys(o.variant for o in outcomes):
        mine = [o for o in outcomes if o.variant == variant]
        answerable = [o for o in mine if o.answerable]
        absent = [o for o in mine if not o.answerable]
        rows[variant] = {
            "answerable": len(answerable),
            "right": sum(o.verdict == "right" for o in answerable),
            "wrong": sum(o.verdict == "wrong" for o in answerable),
            "missed": sum(o.verdict == "missed" for o in answerable),
            "absent": len(absent),
            "invented": sum(o.verdict == "invented" for o in absent),
            "failed": sum(o.verdict == "failed" for o in mine),
            "median_seconds": round(statistics.median(o.seconds for o in mine), 1),
            "sub_calls": round(sum(o.sub_calls for o in mine) / len(mine), 1),
        }
    return rows


def markdown(rows: dict[str, dict[str, float]]) -> str:
    lines = [
        "| variant | answerable right | wrong | missed (NONE) | absent: invented | failed "
        "| median s / question | sub-calls / question |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for variant, r in rows.items():
        share = r["right"] / max(1, r["answerable"])
        lines.append(
            f"| `{variant}` | {r['right']}/{r['answerable']} ({share:.0%}) | {r['wrong']} | {r['missed']} "
            f"| {r['invented']}/{r['absent']} | {r['failed']} | {r['median_seconds']} | {r['sub_calls']} |"
        )
    return "\n".join(lines)


def meets_targets(row: dict[str, float]) -> bool:
    return (
        row["right"] / max(1, row["answerable"]) >= TARGETS["answerable"]
        and row["invented"] <= TARGETS["invented"]
        and row["median_seconds"] < TARGETS["median_seconds"]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="full", help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--limit", type=int, default=None, help="the first N of each kind per sample")
    parser.add_argument("--only", default=None, help="comma-separated question ids")
    parser.add_argument("--json", type=Path, default=None, help="write every outcome here")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument(
        "--remember",
        type=Path,
        default=None,
        help="keep the model's replies in this JSON file and reuse them (strategy work only: not timed)",
    )
    args = parser.parse_args()

    questions = load_questions(limit=args.limit)
    if args.only:
        wanted = set(args.only.split(","))
        questions = [q for q in questions if q.id in wanted]
    engine = make_engine(args.remember)
    outcomes = []
    for variant in args.variants.split(","):
        if variant not in VARIANTS:
            parser.error(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
        for index, question in enumerate(questions):
            outcome = ask(engine, question, variant, index)
            outcomes.append(outcome)
            flag = {"right": "+", "missed": "-", "failed": "x"}.get(outcome.verdict, "!")
            answer = (outcome.answer or "").replace("\n", " | ")[:90]
            print(
                f"{flag} {variant:9} {outcome.seconds:6.1f}s {outcome.sub_calls:3} calls "
                f"{question.id:24} {outcome.verdict:8} {answer}",
                flush=True,
            )
    rows = summarize(outcomes)
    print()
    print(markdown(rows))
    if args.json:
        args.json.write_text(json.dumps([asdict(o) for o in outcomes], indent=1, ensure_ascii=False))
    if args.markdown:
        print(
            f"\nTargets: answerable right >= {TARGETS['answerable']:.0%}, invented "
            f"{TARGETS['invented']}, median < {TARGETS['median_seconds']:g} s a question."
        )


if __name__ == "__main__":
    main()
