"""The OpenAI wire format: request bodies (checked by pydantic), responses, stream chunks, usage and errors.

Field meanings follow the official `openai` Python SDK's types (openai 3.63.0, read 2026-12-06).
Two defaults there are not written in the SDK, so they are assumptions taken from OpenAI's API
reference as commonly quoted: `temperature` defaults to 1, and the legacy `/v1/completions`
endpoint's `max_tokens` to 16. A chat request without `max_tokens` may run to the end of the context.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..errors import WorkbookError
from .text import MAX_STOP_SEQUENCES

DEFAULT_TEMPERATURE = 1.0
DEFAULT_COMPLETION_MAX_TOKENS = 16


class RequestError(WorkbookError):
    """A request the endpoint refuses: its HTTP status and the fields of OpenAI's error body."""

    def __init__(self, message: str, *, status: int = 400, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.type, self.param, self.code = status, type, param, code

    def body(self) -> dict:
        return {"error": {"message": str(self), "type": self.type, "param": self.param, "code": self.code}}


# ----- request bodies ---------------------------------------------------------------------------

class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    include_usage: bool = False


class Sampling(BaseModel):
    """What both endpoints accept. Anything else is refused by name (extra fields are forbidden)."""

    model_config = ConfigDict(extra="forbid")
    model: str
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = None
    stop: str | list[str] | None = Field(None, validate_default=True)  # always a list once checked
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: Literal[1] = 1  # one choice per request
    user: str | None = None  # accepted as OpenAI does; not used
    logprobs: Literal[False] | None = None
    # sglang-router 0.3.2 (and vllm-router 0.1.17, the same family) re-serialises every body it routes with its own
    # request type, which adds SGLang's extensions at their defaults (seen on the wire, 2026-12-06: `echo`,
    # `no_stop_trim`, `ignore_eos`, `skip_special_tokens`, `return_hidden_states`; for chats also
    # `continue_final_message`, `separate_reasoning`, `stream_reasoning`, and from vllm-router `include_reasoning`).
    # Each is accepted at the value that asks for nothing and refused at any other.
    echo: Literal[False] = False
    no_stop_trim: Literal[False] = False
    ignore_eos: Literal[False] = False
    skip_special_tokens: Literal[True] = True
    return_hidden_states: Literal[False] = False

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, stop):
        stops = [stop] if isinstance(stop, str) else list(stop or [])
        if len(stops) > MAX_STOP_SEQUENCES or any(not s for s in stops):
            raise ValueError(f"give at most {MAX_STOP_SEQUENCES} stop sequences, none of them empty")
        return stops

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    def settings(self, default_max_tokens: int) -> dict:
        """Keyword arguments for `Server.submit`, defaults filled in."""
        return dict(max_new_tokens=self.max_tokens or default_max_tokens,
                    temperature=DEFAULT_TEMPERATURE if self.temperature is None else self.temperature,
                    top_p=1.0 if self.top_p is None else self.top_p, seed=self.seed)


class TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["text"]
    text: str


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "user", "assistant"]
    content: str | list[TextPart]
    name: str | None = None

    def plain(self) -> dict:
        """The message as the chat template reads it: role and text."""
        text = self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)
        return {"role": self.role, "content": text}


class ChatRequest(Sampling):
    messages: list[Message] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)  # the newer name for max_tokens
    continue_final_message: Literal[False] = False  # SGLang's extensions, as above
    separate_reasoning: Literal[True] = True
    stream_reasoning: Literal[True] = True
    include_reasoning: Literal[True] = True

    def settings(self, default_max_tokens: int) -> dict:
        return super().settings(self.max_completion_tokens or default_max_tokens)


class CompletionRequest(Sampling):
    prompt: str | list[int]  # one prompt: text or token ids


# ----- responses ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Counts:
    """A finished request's token counts, as `usage` reports them."""

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int  # prompt tokens whose K/V rows came from the prefix cache

    def usage(self) -> dict:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens,
                "prompt_tokens_details": {"cached_tokens": self.cached_tokens}}


@dataclass
class Reply:
    """The bodies of one response: whole, or as stream chunks, in the chat or the text-completion shape."""

    chat: bool
    model: str
    id: str = ""
    created: int = field(default_factory=lambda: int(time.time()))

    def __post_init__(self):
        self.id = self.id or f"{'chatcmpl' if self.chat else 'cmpl'}-{uuid.uuid4().hex}"

    def whole(self, text: str, finish: str, counts: Counts) -> dict:
        if self.chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
                      "finish_reason": finish}
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
        return self._body("chat.completion" if self.chat else "text_completion", [choice], counts.usage())

    def chunk(self, text: str, finish: str | None = None, *, first: bool = False) -> dict:
        """One stream chunk; `usage` is null in every chunk but the last (see `usage_chunk`)."""
        if self.chat:
            delta = ({"role": "assistant", "content": text} if first else {"content": text}) if finish is None else {}
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
        return self._body("chat.completion.chunk" if self.chat else "text_completion", [choice], None)

    def usage_chunk(self, counts: Counts) -> dict:
        """The extra chunk `stream_options.include_usage` asks for: usage for the whole request, no choices."""
        return self._body("chat.completion.chunk" if self.chat else "text_completion", [], counts.usage())

    def _body(self, obj: str, choices: list, usage: dict | None) -> dict:
        return {"id": self.id, "object": obj, "created": self.created, "model": self.model, "choices": choices,
                "usage": usage}
