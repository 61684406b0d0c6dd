"""One generation request: the forms a prompt may take, the checks it passes once, and what a finished request returns.

`check_request` is the one place a prompt is checked (ids in the vocabulary, room in the
model's context for the prompt and every new token); sampling settings are checked where their
`SamplingParams` is built. Everything that runs a request (`Server`, `Engine`, speculative
decoding) calls these before any work, so a refused request changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral
from typing import TYPE_CHECKING, Literal, Sequence, Union

import torch

from .errors import WorkbookError
from .model import check_context, check_token_ids, token_list
from .pricing import Usage
from .sampling import SamplingParams

if TYPE_CHECKING:
    from .speculative import SpeculativeTrace

# Text, token ids, chat messages, or a list of segments (strings and id lists) joined at token level.
Prompt = Union[str, Sequence[int], Sequence[dict], Sequence[Union[str, Sequence[int]]]]


def prompt_ids(tokenizer, prompt: Prompt) -> list[int]:
    """Token ids for a prompt given as text, ids, chat messages, or segments.

    Segments are tokenized one at a time and joined as ids, so the seam between a cached
    prefix and a new suffix is never re-tokenized into different tokens.
    """
    if tokenizer is None and not (isinstance(prompt, (list, tuple, torch.Tensor))
                                  and all(isinstance(x, Integral) for x in prompt)):
        raise WorkbookError("Without a tokenizer a prompt must be token ids.")
    if isinstance(prompt, str):
        return tokenizer.encode(prompt)
    if isinstance(prompt, torch.Tensor):
        return token_list(prompt)
    if isinstance(prompt, (list, tuple)) and all(isinstance(x, Integral) for x in prompt):
        return [int(x) for x in prompt]
    if isinstance(prompt, (list, tuple)) and prompt and all(isinstance(x, dict) for x in prompt):
        return tokenizer.encode_chat(list(prompt))
    if isinstance(prompt, (list, tuple)) and all(isinstance(x, (str, list, tuple)) for x in prompt):
        return [i for part in prompt for i in (tokenizer.encode(part) if isinstance(part, str) else part)]
    raise WorkbookError("A prompt is text, a list of token ids, a list of chat messages, or a list of segments.")


def request_rows(prompt_tokens: int, max_new_tokens: int) -> int:
    """Cache rows a generation request fills: the prompt, then every new token but the last, which is never fed back."""
    return prompt_tokens + max_new_tokens - 1


def check_request(model, ids: list[int], params: SamplingParams) -> list[int]:
    """`ids` (a prompt already turned into token ids), once they fit `model`'s vocabulary and context with `params`' new tokens."""
    vocab = model.config.vocab_size
    check_token_ids(ids, vocab)
    if any(t >= vocab for t in params.stop_token_ids):
        raise WorkbookError(f"Stop token ids must lie in 0..{vocab - 1}; got {list(params.stop_token_ids)}.")
    check_context(model, request_rows(len(ids), params.max_new_tokens))
    return ids


@dataclass
class Timings:
    """Where one request's time went, measured from the moment it was submitted."""

    ttft_s: float  # submission to first new token: waiting, match, prefill, first choice
    cache_write_s: float  # adding the prompt's new pages to the prefix cache (after the first token)
    token_times_s: list[float]  # the gap before each later token (one decode step each, shared with the batch)


@dataclass
class GenerationResult:
    prompt_ids: list[int]
    output_ids: list[int]
    text: str  # the decoded output
    provenance: list[str]  # per prompt position: "loaded" from the prefix cache or "computed"
    usage: Usage
    timings: Timings
    first_token_logits: torch.Tensor  # logits at the last prompt position: a hit must reproduce them
    preemptions: int = 0  # times a server took the request's pages back and recomputed them later
    finish_reason: Literal["stop", "length"] = "length"  # "stop": it ended on a stop token (end of sequence included)
    speculation: SpeculativeTrace | None = None  # how a speculative request's tokens were made

    @property
    def cached_tokens(self) -> int:
        return self.usage.cache_read_tokens
