"""The bundled Q4_1 model file is served as a Q8_0 copy made once (same replies, faster prompts)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlm_worker.engine import local_model, model_file

gguf = pytest.importorskip("gguf")


@pytest.fixture
def bundled(monkeypatch, tmp_path) -> Path:
    monkeypatch.delenv("LOCAL_MODEL_PATH", raising=False)
    monkeypatch.delenv("LOCAL_MODEL_CONVERT", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return Path(local_model.model_path())


def kinds(path: Path) -> set[str]:
    return {tensor.tensor_type.name for tensor in gguf.GGUFReader(path).tensors}


def test_the_bundled_file_is_converted_once_into_the_cache(bundled, tmp_path):
    assert "Q4_1" in kinds(bundled)
    served = Path(model_file.fast_copy(str(bundled)))
    assert served.parent == tmp_path / "cache" / "rlm-engine" / "models"
    assert "Q4_1" not in kinds(served) and "Q8_0" in kinds(served)
    assert [t.name for t in gguf.GGUFReader(served).tensors] == [
        t.name for t in gguf.GGUFReader(bundled).tensors
    ]
    assert not list(served.parent.glob("*.partial"))
    made = served.stat().st_mtime_ns
    assert model_file.fast_copy(str(bundled)) == str(served) and served.stat().st_mtime_ns == made


def test_keep_serves_the_file_as_shipped_and_a_named_file_is_never_converted(bundled, monkeypatch, tmp_path):
    monkeypatch.setenv("LOCAL_MODEL_CONVERT", "keep")
    assert model_file.fast_copy(str(bundled)) == str(bundled)
    monkeypatch.delenv("LOCAL_MODEL_CONVERT")
    monkeypatch.setenv("LOCAL_MODEL_PATH", str(bundled))
    assert local_model.LocalModelSettings.from_env().path == str(bundled)
    assert not (tmp_path / "cache").exists()


def test_a_file_that_cannot_be_converted_is_served_as_it_is(bundled, tmp_path):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF not really")
    assert model_file.fast_copy(str(broken)) == str(broken)


def test_the_converted_file_gives_nearly_the_replies_the_shipped_one_gives(bundled):
    """Q8_0 holds each Q4_1 weight to within 1/127 of its block's range: the replies differ at most
    in a few tokens (seen: one identical, one with two copied numbers changed)."""
    import difflib

    from rlm_shared.strategies.common import EXTRACT_PROMPT, split_chunks

    text = (Path(__file__).resolve().parents[2] / "samples" / "northern_tern_log.txt").read_text()
    prompts = [
        EXTRACT_PROMPT.format(question="Which seaman was killed?", text=c)
        for c in split_chunks(text, 1000)[8:10]
    ]
    replies = {}
    for path in (str(bundled), model_file.fast_copy(str(bundled))):
        # Drafting off: this compares the two files' weights, not two ways of decoding (a verified
        # draft is scored in a bigger batch, whose rounding can flip a near tie of the Q4_1 file).
        settings = local_model.LocalModelSettings(path=path, slots=1, draft_tokens=0)
        server = local_model.LocalModelServer(settings)
        body = {"temperature": 0.0, "seed": local_model.SEED, "max_tokens": 48}
        replies[path] = [
            server._server.handle_chat_completions({**body, "messages": [{"role": "user", "content": p}]})[
                "choices"
            ][0]["message"]["content"]
            for p in prompts
        ]
    shipped, converted = replies.values()
    assert converted[0] == shipped[0]
    assert all(
        difflib.SequenceMatcher(None, a, b).ratio() > 0.8 for a, b in zip(shipped, converted, strict=True)
    )
