"""An OpenAI chat request read as one RLM execution: which model, which context, which question.

The rule (docs/integrations/openai.md says the same, with examples):
- The **question** is the last message, which must be a `user` message. When that message has
  several text parts, its largest part is context, and the other parts, joined, are the question.
- The **context** is the text of every message before it (system, developer, user, assistant and
  tool messages alike, in order, joined by blank lines), then that largest part, if any. A system
  prompt holding a document and a user message holding the question is the plainest request.
- An explicit `rlm` field (the openai SDK's `extra_body={"rlm": {...}}`) with `context`,
  `context_id` or `session_id` names the context instead: then the whole last user message is the
  question, and the earlier messages are not used.
- One user message alone, of one part (what most chat clients send, and what the reference's
  `completion(prompt)` takes): the whole message is the context, and it is the question too. The
  root reads it in the REPL like any context; nothing guesses which half is the document. A long
  message is shown to the root as a question by its beginning and its end (where people put the
  question), never whole: the root's prompt stays small, and `context` holds every character.

Models: `rlm` (the server's default plan: DEFAULT_MODEL, or the offline plan when no provider is
configured), `rlm/<root model>` (e.g. `rlm/openai/gpt-4o-mini`), or an alias from
OPENAI_COMPAT_MODEL_ALIASES.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from rlm_api.schemas import ContextValue, Identifier, ModelName, Strategy
from rlm_worker.engine.options import ExecutionOptions

PREFIX = "rlm"
Role = Literal["system", "developer", "user", "assistant", "tool", "function"]


class ChatRequestError(ValueError):
    """A request that cannot be read as an execution; `param` names the field at fault."""

    def __init__(
        self, message: str, param: str | None = None, status: int = 400, code: str = "invalid_value"
    ):
        super().__init__(message)
        self.message, self.param, self.status, self.code = message, param, status, code


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")  # name, tool_calls, tool_call_id, ...

    role: Role
    content: str | list[ContentPart] | None = None


class RLMExtension(BaseModel):
    """`rlm` in the body: what the OpenAI request has no field for."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    context: ContextValue | None = Field(
        None, description="The context; the messages give only the question."
    )
    context_id: Identifier | None = Field(None, description="A stored context of yours (an execution's).")
    session_id: Identifier | None = Field(None, description="Run over this session's context and memory.")
    strategy: Strategy | None = Field(None, description="A built-in root program instead of a root model.")
    sub_model: ModelName | None = Field(None, description="Sub-call model; default SUB_MODEL.")
    options: ExecutionOptions | None = Field(None, description="Guards, as in POST /api/execute.")


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """The fields read; sampling parameters (temperature, max_tokens, ...) are accepted and ignored,
    since the RLM loop chooses its own calls."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, max_length=300)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int | None = None
    tool_choice: Any = None
    rlm: RLMExtension | None = None


@dataclass(frozen=True)
class ChatQuestion:
    question: str
    context: str | None  # None: the `rlm` field names the context


def message_text(message: ChatMessage, index: int) -> list[str]:
    """The text parts of one message; any other kind of part is refused, naming it."""
    if message.content is None:
        return []
    if isinstance(message.content, str):
        return [message.content]
    texts = []
    for number, part in enumerate(message.content):
        if part.type != "text" or part.text is None:
            raise ChatRequestError(
                f"messages[{index}].content[{number}] is a {part.type!r} part; only text parts are supported",
                f"messages[{index}].content",
            )
        texts.append(part.text)
    return texts


def read_messages(messages: list[ChatMessage], explicit_context: bool) -> ChatQuestion:
    """Split the messages into the question and the context, by the rule in this module's docstring."""
    last_index = len(messages) - 1
    last = messages[-1]
    if last.role != "user":
        raise ChatRequestError(
            f"the last message must be the user's question; it is a {last.role!r} message", "messages"
        )
    parts = message_text(last, last_index)
    if explicit_context:
        question = "\n\n".join(parts)
        return ChatQuestion(_question(question, last_index), None)
    earlier = [text for i, m in enumerate(messages[:-1]) for text in message_text(m, i) if text.strip()]
    if len(parts) > 1:
        largest = max(range(len(parts)), key=lambda i: len(parts[i]))
        earlier.append(parts[largest])
        parts = parts[:largest] + parts[largest + 1 :]
    question = _question("\n\n".join(parts), last_index)
    if not earlier:  # one message holds both: it is the context, and the question too
        return ChatQuestion(question_of_whole_message(question), question)
    return ChatQuestion(question, "\n\n".join(earlier))


#: A lone message up to this long is the question as it is; a longer one by its two ends.
WHOLE_MESSAGE_QUESTION_CHARS = 4_000
MESSAGE_END_CHARS = 1_500


def question_of_whole_message(message: str) -> str:
    """The question of a message that is also the context: itself, or its beginning and end."""
    if len(message) <= WHOLE_MESSAGE_QUESTION_CHARS:
        return message
    left_out = len(message) - 2 * MESSAGE_END_CHARS
    return (
        f"{message[:MESSAGE_END_CHARS]}\n[... {left_out:,} characters left out here; the whole message "
        f"is `context` ...]\n{message[-MESSAGE_END_CHARS:]}"
    )


def _question(text: str, index: int) -> str:
    if not text.strip():
        raise ChatRequestError(f"messages[{index}] (the question) is empty", "messages")
    return text


def resolve_model(name: str, aliases: dict[str, str]) -> str | None:
    """The root model a model name asks for; None for the server's default plan (`rlm`)."""
    target = aliases.get(name, name)
    if target == PREFIX:
        return None
    if target.startswith(PREFIX + "/") and len(target) > len(PREFIX) + 1:
        return target[len(PREFIX) + 1 :]
    known = ", ".join([PREFIX, *aliases]) if aliases else PREFIX
    raise ChatRequestError(
        f"the model {name!r} does not exist here: name an RLM model as rlm/<root model> "
        f"(e.g. rlm/openai/gpt-4o-mini) or one of: {known}; GET /v1/models lists them",
        "model",
        status=404,
        code="model_not_found",
    )
