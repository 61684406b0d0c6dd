"""Prefill and decode with an optional prefix cache, reporting usage and timings the way providers do."""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral
from typing import Hashable, Sequence, Union

import torch

from .errors import WorkbookError
from .model import check_request, request_rows, token_list
from .prefix_cache import CacheBudgetError, PrefixCache
from .pricing import Usage
from .sampling import check_sampling, choose_token, make_generator
from .timing import Stopwatch

# Text, token ids, chat messages, or a list of segments (strings and id lists) joined at token level.
Prompt = Union[str, Sequence[int], Sequence[dict], Sequence[Union[str, Sequence[int]]]]


@dataclass
class Timings:
    """Where one request's time went, as measured by the engine's stopwatch."""

    ttft_s: float  # request start to first new token: match, load, prefill, first choice
    cache_write_s: float  # copying the prompt's new pages into the prefix cache (after the first token)
    token_times_s: list[float]  # each later token, one decode step each


@dataclass
class GenerationResult:
    prompt_ids: list[int]
    output_ids: list[int]
    text: str  # the decoded output
    provenance: list[str]  # per prompt position: "loaded" from the prefix cache or "computed"
    usage: Usage
    timings: Timings
    first_token_logits: torch.Tensor  # logits at the last prompt position: a hit must reproduce them

    @property
    def cached_tokens(self) -> int:
        return self.usage.cache_read_tokens


class Engine:
    """Runs requests on one model; with a `PrefixCache`, reuses K/V rows of prompts seen before."""

    def __init__(self, model, tokenizer, prefix_cache: PrefixCache | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.prefix_cache = prefix_cache
        if prefix_cache is not None:
            prefix_cache.bind(model)

    def prompt_ids(self, prompt: Prompt) -> list[int]:
        """Token ids for a prompt given as text, ids, chat messages, or segments.

        Segments are tokenized one at a time and joined as ids, so the seam between a cached
        prefix and a new suffix is never re-tokenized into different tokens.
        """
        if isinstance(prompt, str):
            ids = self.tokenizer.encode(prompt)
        elif isinstance(prompt, torch.Tensor):
            ids = token_list(prompt)
        elif isinstance(prompt, (list, tuple)) and all(isinstance(x, Integral) for x in prompt):
            ids = [int(x) for x in prompt]
        elif isinstance(prompt, (list, tuple)) and prompt and all(isinstance(x, dict) for x in prompt):
            ids = self.tokenizer.encode_chat(list(prompt))
        elif isinstance(prompt, (list, tuple)) and all(isinstance(x, (str, list, tuple)) for x in prompt):
            ids = [i for part in prompt for i in (self.tokenizer.encode(part) if isinstance(part, str) else part)]
        else:
            raise WorkbookError("A prompt is text, a list of token ids, a list of chat messages, or a list of segments.")
        return ids

    def generate(self, prompt: Prompt, max_new_tokens: int = 32, temperature: float = 0.0, top_p: float = 1.0,
                 seed: int | None = None, tenant: Hashable = None, stop_at_eos: bool = True) -> GenerationResult:
        """Generate up to `max_new_tokens` after `prompt`, reusing and then extending the prefix cache.

        Everything is checked before the cache is touched, so a refused request changes nothing.
        """
        ids = self._checked(prompt, max_new_tokens, temperature, top_p)
        model, cache = self.model, self.prefix_cache
        rows = model.new_cache(request_rows(len(ids), max_new_tokens))
        generator = make_generator(seed, model.device)
        eos = getattr(self.tokenizer, "eos_token_id", None) if stop_at_eos else None
        with Stopwatch(model.device) as clock:
            match = cache.match(ids, tenant) if cache else None
            hit = match.length if match else 0
            if cache:
                cache.lock(match.node)
            try:
                if cache:
                    cache.load_into(match, rows)
                logits = model(torch.tensor([ids[hit:]], device=model.device), cache=rows, last_only=True)[0, -1]
                output = [choose_token(logits, temperature, top_p, generator)]
                clock.lap()  # time to first token
                written = cache.insert(ids, rows, tenant) if cache else 0
                clock.lap()  # cache write
                while len(output) < max_new_tokens and output[-1] != eos:
                    step = model(torch.tensor([[output[-1]]], device=model.device), cache=rows)[0, -1]
                    output.append(choose_token(step, temperature, top_p, generator))
                    clock.lap()
            finally:
                if cache:
                    cache.unlock(match.node)
        usage = Usage(input_tokens=len(ids) - hit - written, cache_write_tokens=written,
                      cache_read_tokens=hit, output_tokens=len(output))
        return GenerationResult(
            prompt_ids=ids, output_ids=output, text=self.tokenizer.decode(output),
            provenance=rows.provenance[:len(ids)], usage=usage,
            timings=Timings(clock.laps[0], clock.laps[1], clock.laps[2:]), first_token_logits=logits,
        )

    def _checked(self, prompt: Prompt, max_new_tokens: int, temperature: float, top_p: float) -> list[int]:
        """The prompt's ids, once the request checks shared with the model and the prefix cache's budget have passed."""
        check_sampling(temperature, top_p)
        ids = check_request(self.model, self.prompt_ids(prompt), max_new_tokens)
        cache = self.prefix_cache
        if cache is not None and cache.pages_for(len(ids)) > cache.num_pages:
            raise CacheBudgetError(f"The prompt fills {cache.pages_for(len(ids))} pages of {cache.page_size} tokens but the "
                                   f"prefix cache holds {cache.num_pages}. Raise capacity_tokens or shorten the prompt.")
        return ids
