"""The root programs the benchmarks run, and the marker that tells the model server which one to answer.

Both contenders (this engine and the reference `rlms`) get the same program text as the root model's
first reply, so only the engine differs. Programs report through `answer["content"]` (both engines
accept it) as JSON, with the time the user's code saw its sub-calls take.
"""

from __future__ import annotations

import re

#: Put this in the user query; the model server answers the root turn with the named program.
MARKER = re.compile(r"bench-program:(\w+):(\d+)")
#: A sub-call prompt of the chain program; the model answers the number plus one.
CHAIN_STEP = re.compile(r"bench-chain-step (\d+)")


def query(name: str, size: int) -> str:
    """The user query that selects program `name` with parameter `size`."""
    return f"Run the benchmark program. bench-program:{name}:{size}"


#: A clock for the program, if its sandbox allows `datetime` (both real ones do).
_CLOCK = """import json
try:
    import datetime
    clock = datetime.datetime.now
except ImportError:
    clock = None
started = clock() if clock else None
"""
_SECONDS = "seconds = (clock() - started).total_seconds() if clock else None"

#: Split the input into {n} chunks and ask about each one in one batch (the fan-out under test).
_FAN_OUT = """
size = -(-len(context) // {n})
chunks = [context[i:i + size] for i in range(0, len(context), size)]
answers = llm_query_batched(["How many chunks is this? Reply with a number.\\n\\n" + c for c in chunks])
"""

FANOUT = (
    """```repl
"""
    + _CLOCK
    + _FAN_OUT
    + _SECONDS
    + """
answer["content"] = json.dumps({{"count": sum(1 for a in answers if a.strip() == "1"), "calls": len(answers), "seconds": seconds}})
answer["ready"] = True
```"""
)

CHAIN = (
    """```repl
"""
    + _CLOCK
    + """
value = "0"
for step in range({n}):
    value = llm_query("bench-chain-step " + value)
"""
    + _SECONDS
    + """
answer["content"] = json.dumps({{"count": int(value), "calls": {n}, "seconds": seconds}})
answer["ready"] = True
```"""
)

SEQUENTIAL = (
    """```repl
"""
    + _CLOCK
    + """
durations = []
ok = 0
for step in range({n}):
    started = clock() if clock else None
    reply = llm_query("ping")
    if clock:
        durations.append((clock() - started).total_seconds())
    ok += 1 if reply.strip() == "1" else 0
answer["content"] = json.dumps({{"count": ok, "calls": {n}, "durations": durations}})
answer["ready"] = True
```"""
)

SMALL_BATCH = """```repl
import json
answers = llm_query_batched(["Item " + str(i) + ": " + context[i * 100:(i + 1) * 100] for i in range({n})])
answer["content"] = json.dumps({{"count": sum(1 for a in answers if a.strip() == "1"), "calls": {n}}})
answer["ready"] = True
```"""

#: The fan-out, then one recursive child (its own REPL, its own sub-calls) on the first chunk: the
#: multi-host test's and benchmark's program. The child's query selects `small_batch` for it.
FANOUT_AND_CHILD = (
    """```repl
"""
    + _CLOCK
    + _FAN_OUT
    + _SECONDS
    + """
child = rlm_query("Run the child program. bench-program:small_batch:4", context=chunks[0])
answer["content"] = json.dumps({{"count": sum(1 for a in answers if a.strip() == "1"), "calls": len(answers), "seconds": seconds, "child": child}})
answer["ready"] = True
```"""
)

PROGRAMS = {
    "fanout": FANOUT,
    "fanout_and_child": FANOUT_AND_CHILD,
    "chain": CHAIN,
    "sequential": SEQUENTIAL,
    "small_batch": SMALL_BATCH,
}

#: What a root turn gets after the program (should not happen): end the run at once.
GIVE_UP = '```repl\nanswer["content"] = "no program"\nanswer["ready"] = True\n```'


def root_reply(text: str) -> str:
    match = MARKER.search(text)
    if match is None or match.group(1) not in PROGRAMS:
        return GIVE_UP
    return PROGRAMS[match.group(1)].format(n=int(match.group(2)))


def sub_reply(prompt: str) -> str:
    match = CHAIN_STEP.search(prompt)
    return str(int(match.group(1)) + 1) if match else "1"
