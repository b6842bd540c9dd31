"""Needle in a haystack with the local model: which built-in strategy finds a planted fact in long,
dense, real text, and which one invents an answer when the fact is not there.

Haystacks: two public-domain texts shipped in `bench/needle_data/` (see its SOURCES.md): the
Elements database (dense technical text, full of numbers) and The Devil's Dictionary (D to F).
Each case takes a `--size`-character stretch of one of them and plants one needle sentence at a
paragraph boundary; the same stretch without the needle is its "absent" twin, where the right
answer is NONE. Every case runs through the real engine, the real sandbox and the local model
(temperature 0, fixed seed), exactly as embedded mode runs it.

Scoring: present: correct when the final answer contains the needle's answer, missed when it is
NONE, false otherwise. Absent: correct when NONE, false otherwise.

Run: `python -m bench.needle` (add `--markdown` for the BENCHMARKS.md table).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

DATA = Path(__file__).parent / "needle_data"
HAYSTACKS = {"elements": "elements.txt", "devils_dictionary": "devils_dictionary_d_f.txt"}
MODEL = "local/smollm2"


@dataclass(frozen=True)
class Needle:
    question: str
    sentence: str
    answer: str


NEEDLES = (
    Needle("What is the vault combination?", "The vault combination is 4417-2291.", "4417-2291"),
    Needle(
        "Who inspected the lighthouse at Port Avalon?",
        "The lighthouse at Port Avalon was inspected by Margaret Oakhurst.",
        "Oakhurst",
    ),
    Needle(
        "At what time does the ferry to Harrow Island leave?",
        "The ferry to Harrow Island leaves every morning at 7:45.",
        "7:45",
    ),
    Needle(
        "What is the password of the archive room?",
        "The password of the archive room is BLUE HERON.",
        "BLUE HERON",
    ),
    Needle(
        "How long is the bridge over the Tamsin River?",
        "The bridge over the Tamsin River is 348 metres long.",
        "348",
    ),
    Needle(
        "In which drawer is the laboratory key kept?",
        "The laboratory key is kept in drawer 12 of the oak desk.",
        "drawer 12",
    ),
    Needle(
        "What was the name of Captain Ortolan's ship?",
        "Captain Ortolan's ship was named the Grey Petrel.",
        "Grey Petrel",
    ),
    Needle(
        "How many barrels of cider did the Wexley farm produce in 1893?",
        "In 1893 the Wexley farm produced 2,316 barrels of cider.",
        "2,316",
    ),
)


@dataclass(frozen=True)
class Case:
    haystack: str
    needle: Needle
    present: bool
    context: str


def haystack_text(name: str) -> str:
    return (DATA / HAYSTACKS[name]).read_text(encoding="utf-8")


def plant(text: str, sentence: str, rng: random.Random) -> str:
    """`text` with `sentence` inserted at a paragraph boundary chosen by `rng` (never the ends)."""
    lo, hi = len(text) // 10, len(text) * 9 // 10
    at = text.find("\n\n", rng.randrange(lo, hi))
    at = at + 2 if 0 < at < hi else rng.randrange(lo, hi)
    return text[:at] + sentence + "\n\n" + text[at:]


def build_cases(size: int, seed: int = 7, needles: tuple[Needle, ...] = NEEDLES) -> list[Case]:
    """For each haystack and needle: a stretch of `size` characters with the needle, and without."""
    rng = random.Random(seed)
    cases = []
    for name in HAYSTACKS:
        text = haystack_text(name)
        for needle in needles:
            start = rng.randrange(0, max(1, len(text) - size))
            stretch = text[start : start + size]
            cases.append(Case(name, needle, True, plant(stretch, needle.sentence, rng)))
            cases.append(Case(name, needle, False, stretch))
    return cases


def is_none(answer: str | None) -> bool:
    return answer is None or answer.strip().upper().startswith("NONE")


def score(case: Case, answer: str | None) -> str:
    """`correct`, `missed` (NONE though the fact is there) or `false` (a wrong or invented answer)."""
    if not case.present:
        return "correct" if is_none(answer) else "false"
    if is_none(answer):
        return "missed"
    return "correct" if plain(case.needle.answer) in plain(answer or "") else "false"


def plain(text: str) -> str:
    """Lowercase, with thousands separators dropped: `2,316` and `2316` are the same answer."""
    return re.sub(r"(?<=\d),(?=\d{3})", "", text.lower())


@dataclass
class Outcome:
    strategy: str
    haystack: str
    question: str
    present: bool
    verdict: str
    answer: str | None
    seconds: float
    sub_calls: int
    input_tokens: int
    output_tokens: int


def make_engine():
    """The real engine as embedded mode builds it, with an in-memory trace."""
    from rlm_worker.dispatchers import InProcessDispatcher
    from rlm_worker.engine.llm import LiteLLMClient
    from rlm_worker.engine.loop import Engine
    from rlm_worker.engine.memory_sink import InMemoryTraceSink
    from rlm_worker.sandbox import SandboxConfig, make_sandbox_factory

    sink = InMemoryTraceSink()
    client = LiteLLMClient()
    return Engine(client, InProcessDispatcher(client, sink), sink, make_sandbox_factory(SandboxConfig()))


def run_case(engine, case: Case, strategy: str, chunk_size: int, index: int) -> Outcome:
    from rlm_shared.strategies import get_strategy
    from rlm_worker.engine.loop import ExecutionRequest
    from rlm_worker.engine.options import ExecutionOptions

    request = ExecutionRequest(
        execution_id=f"needle-{strategy}-{index}",
        user_query=case.needle.question,
        context=case.context,
        root_model=f"({strategy})",
        sub_model=MODEL,
        options=ExecutionOptions(chunk_size=chunk_size, timeout_seconds=900),
        root_code=get_strategy(strategy),
        root_code_label=f"strategy {strategy}",
    )
    started = time.perf_counter()
    result = engine.run(request)
    answer = result.final_answer if result.status == "succeeded" else None
    return Outcome(
        strategy=strategy,
        haystack=case.haystack,
        question=case.needle.question,
        present=case.present,
        verdict=score(case, answer),
        answer=answer if answer is not None else f"({result.status}: {result.error})",
        seconds=round(time.perf_counter() - started, 2),
        sub_calls=result.sub_calls,
        input_tokens=result.input_tokens,
        output_tokens=result.output_tokens,
    )


def summarize(outcomes: list[Outcome]) -> dict[str, dict[str, float]]:
    table: dict[str, dict[str, float]] = {}
    for strategy in dict.fromkeys(o.strategy for o in outcomes):
        mine = [o for o in outcomes if o.strategy == strategy]
        present = [o for o in mine if o.present]
        absent = [o for o in mine if not o.present]
        table[strategy] = {
            "cases": len(mine),
            "correct": sum(o.verdict == "correct" for o in mine),
            "found": sum(o.verdict == "correct" for o in present),
            "present": len(present),
            "none_when_absent": sum(o.verdict == "correct" for o in absent),
            "absent": len(absent),
            "false_answers": sum(o.verdict == "false" for o in mine),
            "sub_calls": sum(o.sub_calls for o in mine),
            "seconds_per_case": round(sum(o.seconds for o in mine) / max(1, len(mine)), 1),
        }
    return table


def markdown(table: dict[str, dict[str, float]], size: int, chunk_size: int) -> str:
    lines = [
        f"Context {size:,} characters, chunk size {chunk_size:,}, model `{MODEL}` (SmolLM2-135M Q4_1).",
        "",
        "| strategy | accuracy | found (present) | NONE (absent) | false answers | sub-calls | s / case |",
        "|---|---|---|---|---|---|---|",
    ]
    for strategy, row in table.items():
        lines.append(
            f"| `{strategy}` | {row['correct']}/{row['cases']} | {row['found']}/{row['present']} "
            f"| {row['none_when_absent']}/{row['absent']} | {row['false_answers']} "
            f"| {row['sub_calls']} | {row['seconds_per_case']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategies", default="search,find,map_reduce")
    parser.add_argument("--size", type=int, default=16_000, help="characters of haystack per case")
    parser.add_argument("--chunk-size", type=int, default=None, help="default: the local chunk size")
    parser.add_argument("--needles", type=int, default=len(NEEDLES))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, default=None, help="write every outcome here")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()

    from rlm_shared.strategies import LOCAL_CHUNK_SIZE

    chunk_size = args.chunk_size or LOCAL_CHUNK_SIZE
    cases = build_cases(args.size, args.seed, NEEDLES[: args.needles])
    engine = make_engine()
    outcomes = []
    for strategy in args.strategies.split(","):
        for index, case in enumerate(cases):
            outcome = run_case(engine, case, strategy, chunk_size, index)
            outcomes.append(outcome)
            flag = "+" if outcome.verdict == "correct" else ("-" if outcome.verdict == "missed" else "!")
            print(
                f"{flag} {strategy:10} {case.haystack:17} {'present' if case.present else 'absent ':7} "
                f"{outcome.seconds:6.1f}s {outcome.sub_calls:3} calls  {case.needle.question[:40]!r} "
                f"-> {str(outcome.answer)[:70]!r}",
                flush=True,
            )
    table = summarize(outcomes)
    print(json.dumps(table, indent=2))
    if args.json:
        args.json.write_text(json.dumps([asdict(o) for o in outcomes], indent=1))
    if args.markdown:
        print(markdown(table, args.size, chunk_size))


if __name__ == "__main__":
    main()
