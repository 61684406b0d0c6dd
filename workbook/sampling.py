"""Turning logits into the next token: greedy, temperature, top-k and top-p (nucleus) sampling.

Sampling settings act only on the last step, after every K/V row is computed, which is why
they never change what a prefix cache can reuse. `SamplingParams` carries one request's
settings, checked once where it is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Real

import torch

from .checks import check_whole
from .errors import WorkbookError


def check_sampling(temperature: float, top_p: float, top_k: int | None = None) -> None:
    if isinstance(temperature, bool) or not isinstance(temperature, Real) or not temperature >= 0:
        raise WorkbookError(f"temperature must be a number >= 0 (0 means greedy), not {temperature!r}.")
    if isinstance(top_p, bool) or not isinstance(top_p, Real) or not 0 < top_p <= 1:
        raise WorkbookError(f"top_p must be in (0, 1], not {top_p!r}.")
    if top_k is not None:
        check_whole("top_k", top_k, 1)


@dataclass(frozen=True)
class SamplingParams:
    """How one request chooses and stops: checked here, once, so everything that takes one can trust it.

    `top_k` (None: off) keeps the k likeliest tokens before `top_p` trims further. The request
    stops after `max_new_tokens`, or just after the tokenizer's end-of-sequence token when
    `stop_at_eos`, or just after any of `stop_token_ids`; the stopping token is kept in the output.
    """

    max_new_tokens: int = 32
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int | None = None
    seed: int | None = None
    stop_at_eos: bool = True
    stop_token_ids: tuple[int, ...] = ()

    def __post_init__(self):
        check_whole("max_new_tokens", self.max_new_tokens, 1)
        check_sampling(self.temperature, self.top_p, self.top_k)
        if self.seed is not None:
            check_whole("seed", self.seed, 0)
        if not isinstance(self.stop_at_eos, bool):
            raise WorkbookError(f"stop_at_eos must be True or False, not {self.stop_at_eos!r}.")
        stops = self.stop_token_ids
        if not isinstance(stops, (list, tuple)):
            raise WorkbookError(f"stop_token_ids must be a list of token ids, not {stops!r}.")
        for token in stops:
            check_whole("a stop token id", token, 0)
        object.__setattr__(self, "stop_token_ids", tuple(int(t) for t in stops))

    def stops(self, eos_token_id: int | None) -> frozenset[int]:
        """The token ids that end this request, given the tokenizer's end-of-sequence id (None: it has none)."""
        eos = {eos_token_id} if self.stop_at_eos and eos_token_id is not None else set()
        return frozenset(eos | set(self.stop_token_ids))


def sampling_params(params: SamplingParams | None, settings: dict) -> SamplingParams:
    """`params`, or one built from keyword `settings` (max_new_tokens=..., temperature=...); never both."""
    if params is None:
        return SamplingParams(**settings)
    if not isinstance(params, SamplingParams):
        raise WorkbookError(f"params must be a SamplingParams, not {type(params).__name__}; "
                            "or pass settings by name (max_new_tokens=..., temperature=...).")
    if settings:
        raise WorkbookError(f"Give either params or settings by name ({', '.join(settings)}), not both.")
    return params


def next_token_probs(logits: torch.Tensor, temperature: float = 0.0, top_p: float = 1.0,
                     top_k: int | None = None) -> torch.Tensor:
    """The distribution the next token is drawn from, over the last dimension of `logits`.

    temperature 0 puts all the mass on the argmax (greedy); top_k keeps the k likeliest tokens;
    top_p < 1 then keeps the smallest set of tokens whose probabilities add up to at least top_p,
    renormalised.
    """
    check_sampling(temperature, top_p, top_k)
    logits = logits.float()
    if temperature == 0:
        return torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).float()
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p < 1:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        # Keep a token if the mass before it is still below top_p (so the top token is always kept).
        keep_sorted = (sorted_probs.cumsum(-1) - sorted_probs) < top_p
        keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
        probs = probs * keep
        probs = probs / probs.sum(-1, keepdim=True)
    return probs


def make_generator(seed: int | None, device: torch.device | str = "cpu") -> torch.Generator | None:
    """A seeded random generator on `device`, or None to use torch's global one."""
    return None if seed is None else torch.Generator(device=device).manual_seed(seed)


def sample(probs: torch.Tensor, generator: torch.Generator | None = None) -> int:
    """Draw one token id from a 1-D distribution."""
    return int(torch.multinomial(probs, 1, generator=generator))


def choose_token(logits: torch.Tensor, temperature: float = 0.0, top_p: float = 1.0,
                 generator: torch.Generator | None = None, top_k: int | None = None) -> int:
    """The next token for 1-D `logits`: the argmax when greedy, else a draw from `next_token_probs`."""
    if temperature == 0:
        return int(logits.argmax())
    return sample(next_token_probs(logits, temperature, top_p, top_k), generator)
