"""Built-in root strategies: fixed REPL programs run in the sandbox instead of a root model.

For when no capable root model is configured (a small local model cannot write code) or the user
wants a fixed plan. Each strategy is a program file in this package, sent to the sandbox as source
text after `common.py`; it sees the same REPL API a root model's code does (`context`, `QUESTION`,
`DEFAULT_CHUNK_SIZE`, `llm_query_batched`, `FINAL`). The trace names the strategy and says that no
root model wrote the code.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

#: The built-in strategies, by name.
STRATEGIES: tuple[str, ...] = ("search", "find", "map_reduce")
#: The strategy embedded mode uses with the local model: the best on bench/needle.py (BENCHMARKS.md).
DEFAULT_STRATEGY = "search"
#: Chunk size for a small local sub-model: its context is small and it reads short texts best.
LOCAL_CHUNK_SIZE = 1000


class UnknownStrategy(ValueError):
    """A strategy name that is not built in."""


@cache
def _source(module: str) -> str:
    return files(__package__).joinpath(f"{module}.py").read_text(encoding="utf-8")


def get_strategy(name: str) -> str:
    """The full program of a built-in strategy, ready for the sandbox."""
    if name not in STRATEGIES:
        raise UnknownStrategy(f"unknown strategy {name!r}; built in: {', '.join(STRATEGIES)}")
    return _source("common") + "\n\n" + _source(name)


def helpers_source() -> str:
    """`common.py`, the helpers every built-in strategy program starts with."""
    return _source("common")


def split_helpers(code: str) -> tuple[str | None, str]:
    """(helpers, program) of a strategy's code as the trace holds it; (None, code) for any other
    code. Readers want the program first: the helpers are the same in every strategy."""
    helpers = helpers_source()
    if code.startswith(helpers):
        return helpers, code[len(helpers) :].lstrip("\n")
    return None, code


def root_program(strategy: str | None, root_code: str | None) -> tuple[str, str] | None:
    """(code, label) of the fixed root program an execution asked for, or None for a root model.

    The user's own `root_code` wins over a strategy name; its label is `root_code`.
    """
    if root_code:
        return root_code, "root_code"
    if strategy:
        return get_strategy(strategy), f"strategy {strategy}"
    return None
