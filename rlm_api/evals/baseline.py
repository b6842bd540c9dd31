"""The paper's baseline: the base model alone, one direct call over the input cut to its window.

It runs as an ordinary execution too (traced, priced, in the dashboard like every item): a
two-line root program asks the base model once over the stored, already truncated input. The
base model of a configuration is its root model, or its sub-model when a strategy or a root
program plays the root.
"""

from __future__ import annotations

import os

#: The root program of a baseline execution: one sub-call with the (truncated) input and question.
BASELINE_PROGRAM = """\
reply = llm_query(context + "\\n\\nQuestion: " + QUESTION + "\\nAnswer with only the answer.")
FINAL(reply)
"""
#: Characters a token of English prose is worth, roughly (the window is given in tokens).
CHARS_PER_TOKEN = 4
#: Tokens kept free for the question, the instruction and the reply.
RESERVED_TOKENS = 512
DEFAULT_WINDOW_TOKENS = 8192


def window_tokens(model: str, chosen: int | None = None) -> int:
    """The model's input window in tokens: as chosen, else the local model's context, else
    litellm's model map (`max_input_tokens`), else DEFAULT_WINDOW_TOKENS."""
    if chosen:
        return chosen
    from rlm_worker.engine.local_model import is_local

    if is_local(model):
        return int(os.environ.get("LOCAL_MODEL_CONTEXT_TOKENS", "2048"))
    try:
        from rlm_worker.engine.llm import _lib

        info = _lib().get_model_info(model)
        return int(info.get("max_input_tokens") or info.get("max_tokens") or DEFAULT_WINDOW_TOKENS)
    except Exception:  # a model litellm does not map
        return DEFAULT_WINDOW_TOKENS


def truncate(text: str, window: int, question: str) -> str:
    """The head of `text` that fits `window` tokens with the question and a reply (the paper cuts
    the input to the model's context window)."""
    keep = max(0, (window - RESERVED_TOKENS) * CHARS_PER_TOKEN - len(question))
    return text[:keep]
