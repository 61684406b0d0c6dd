"""Turning logits into the next token: greedy, temperature and top-p (nucleus) sampling.

Sampling settings act only on the last step, after every K/V row is computed, which is why
they never change what a prefix cache can reuse.
"""

from __future__ import annotations

import torch

from .errors import WorkbookError


def check_sampling(temperature: float, top_p: float) -> None:
    if not temperature >= 0:
        raise WorkbookError(f"temperature must be >= 0 (0 means greedy), not {temperature}.")
    if not 0 < top_p <= 1:
        raise WorkbookError(f"top_p must be in (0, 1], not {top_p}.")


def next_token_probs(logits: torch.Tensor, temperature: float = 0.0, top_p: float = 1.0) -> torch.Tensor:
    """The distribution the next token is drawn from, over the last dimension of `logits`.

    temperature 0 puts all the mass on the argmax (greedy); top_p < 1 keeps the smallest set
    of tokens whose probabilities add up to at least top_p, renormalised.
    """
    check_sampling(temperature, top_p)
    logits = logits.float()
    if temperature == 0:
        return torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).float()
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
                 generator: torch.Generator | None = None) -> int:
    """The next token for 1-D `logits`: the argmax when greedy, else a draw from `next_token_probs`."""
    if temperature == 0:
        return int(logits.argmax())
    return sample(next_token_probs(logits, temperature, top_p), generator)
