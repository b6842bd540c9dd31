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


def tokenizer_margin(model: str) -> float:
    """How many of the model's tokens one token of litellm's count may be. litellm counts OpenAI
    models exactly (tiktoken) and others with an approximation; the local SmolLM2 tokenizer makes
    1.05-1.26x tiktoken's count on the bundled tasks (digits split one by one), measured."""
    from rlm_worker.engine.local_model import is_local

    if is_local(model):
        return 1.3
    return 1.0 if model.startswith("openai/") or "/" not in model else 1.1


def count_tokens(model: str, text: str) -> int:
    from rlm_worker.engine.llm import _lib

    try:
        return int(_lib().token_counter(model=model, text=text))
    except Exception:  # a model litellm cannot tokenize: the rough rule
        return len(text) // CHARS_PER_TOKEN + 1


def truncate(text: str, window: int, question: str, model: str) -> str:
    """The head of `text` that fits the model's `window` (tokens) with the question and a reply:
    the paper cuts the input to the model's context window. Counted with the model's tokenizer
    where litellm has it, with a margin where it does not."""
    budget = window - RESERVED_TOKENS - count_tokens(model, question)
    if budget <= 0:
        return ""
    margin = tokenizer_margin(model)
    keep = min(len(text), int(budget * CHARS_PER_TOKEN / margin))
    for _ in range(8):
        tokens = count_tokens(model, text[:keep]) * margin
        if tokens <= budget:
            return text[:keep]
        keep = int(keep * budget / tokens * 0.97)
    return text[:keep]
