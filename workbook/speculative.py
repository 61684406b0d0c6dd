"""Speculative decoding: a cheap drafter guesses k tokens, the target checks all of them in one pass.

Verifying k+1 positions costs the target little more than decoding one, because its weights
are read once either way. So a drafter (a small model, or a lookup in the prompt) proposes
`k` tokens, the target scores them in one forward pass over its KV cache, the longest correct
run is kept plus one token from the target, and the rows of rejected guesses are cropped from
both caches. The acceptance rule (Leviathan et al. 2023; Chen et al. 2023) keeps the output
exactly what the target alone would produce: the same tokens when greedy, the same
distribution when sampling.

Both caches keep rows for every token but the last one, which is "pending": the next forward
pass feeds it first, so its row and the drafts' rows are computed together.

Drafters sit behind one protocol, `Drafter`: a small model (`ModelDrafter`) and prompt lookup
(`PromptLookupDrafter`) ship, and any other class with the same members plugs in.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral
from typing import ClassVar, Literal, Protocol

import torch

from .errors import WorkbookError
from .kv_cache import KVCache
from .model import Transformer, check_context, check_request, check_whole, request_rows
from .sampling import check_sampling, choose_token, make_generator, next_token_probs, sample
from .timing import Stopwatch

PHASES = ("prefill", "draft", "verify", "other")


# ----- drafters ---------------------------------------------------------------------------------

class Drafter(Protocol):
    """What speculative decoding asks of a drafter; any class with these members plugs into `speculative_generate`.

    Guesses come with q, the distributions they were drawn from, or None when the drafter was
    sure of each guess (a lookup, a greedy draft): then q is one-hot and a guess x passes with probability p(x).
    """

    @property
    def forwards(self) -> int:
        """Draft-model forward passes in this request (0 for a drafter without a model)."""

    @property
    def cache_rows(self) -> int | None:
        """K/V rows the drafter holds, for the trace; None when it keeps no cache."""

    def check_compatible(self, target: Transformer, rows: int) -> None:
        """Refuse, before any work, to draft for `target` in a request that fills `rows` cache rows."""

    def prefill(self, tokens: list[int]) -> None:
        """Start a request on the prompt `tokens`; its last token is pending, as in the target."""

    def propose(self, tokens: list[int], k: int, temperature: float, top_p: float,
                generator: torch.Generator | None) -> tuple[list[int], torch.Tensor | None]:
        """Up to `k` guesses at what follows `tokens`, and their q rows [n, vocab] (None: sure of each guess)."""

    def rollback(self, keep: int) -> None:
        """Forget everything after the first `keep` tokens: the guesses the target rejected."""


# Read off the protocol, so the check in `as_drafter` cannot drift from it.
DRAFTER_METHODS = tuple(name for name, member in vars(Drafter).items() if callable(member) and not name.startswith("_"))


@dataclass
class PromptLookupDrafter:
    """Drafts without a model: finds the text's last n tokens earlier in the prompt or output, proposes what followed.

    Pays off when the answer quotes its input (a document, code being edited, a tool result).
    Longer n-grams are tried first; the most recent earlier occurrence wins.
    """

    max_ngram: int = 3
    min_ngram: int = 1
    forwards: ClassVar[int] = 0  # no model runs...
    cache_rows: ClassVar[None] = None  # ...and no cache needs rolling back

    def __post_init__(self):
        if not (isinstance(self.min_ngram, Integral) and isinstance(self.max_ngram, Integral)
                and 1 <= self.min_ngram <= self.max_ngram):
            raise WorkbookError(f"PromptLookupDrafter needs whole numbers 1 <= min_ngram <= max_ngram, "
                                f"got min_ngram={self.min_ngram!r}, max_ngram={self.max_ngram!r}.")

    def check_compatible(self, target: Transformer, rows: int) -> None:
        """Any target will do: a lookup only repeats ids the text already holds."""

    def prefill(self, tokens: list[int]) -> None:
        """Nothing to prepare: every lookup searches the whole text afresh."""

    def propose(self, tokens: list[int], k: int, temperature: float = 0.0, top_p: float = 1.0,
                generator: torch.Generator | None = None) -> tuple[list[int], None]:
        """Up to `k` tokens that followed an earlier copy of the last n tokens ([] when there is none).

        q is None whatever the temperature: a lookup is sure of its guess.
        """
        for n in range(min(self.max_ngram, len(tokens) - 1), self.min_ngram - 1, -1):
            suffix = list(tokens[-n:])
            # Scan right to left; a start at len - n would be the suffix itself, and must leave a token after it.
            for start in range(len(tokens) - n - 1, -1, -1):
                if tokens[start] == suffix[0] and tokens[start:start + n] == suffix:
                    return list(tokens[start + n:start + n + k]), None
        return [], None

    def rollback(self, keep: int) -> None:
        """Nothing to forget: a lookup keeps no state between guesses."""


class ModelDrafter:
    """A small draft model with its own KV cache, rolled back like the target's.

    With `min_confidence` > 0 a draft stops early, after a guess the draft itself gives less
    than that probability: later guesses would build on a likely miss, and each costs a forward.
    """

    def __init__(self, model: Transformer, capacity: int, min_confidence: float = 0.0):
        if not isinstance(model, Transformer):
            raise WorkbookError("draft must be a workbook Transformer (workbook.load_model), a PromptLookupDrafter, or a "
                                f"Drafter with the methods {', '.join(DRAFTER_METHODS)}; not {type(model).__name__}.")
        self.model, self.capacity, self.min_confidence = model, capacity, min_confidence
        self.cache: KVCache | None = None  # made by prefill, so a refused request never allocates one
        self.forwards = 0

    @property
    def cache_rows(self) -> int:
        """Rows in the draft model's cache (after prefill)."""
        return self.cache.length

    def check_compatible(self, target: Transformer, rows: int) -> None:
        """Refuse a draft whose token ids mean other text than the target's, on another device, or too short."""
        draft = self.model
        if draft.config.vocab_size != target.config.vocab_size:
            raise WorkbookError(f"The draft's vocabulary has {draft.config.vocab_size} tokens and the target's "
                                f"{target.config.vocab_size}: a draft must share the target's tokenizer. "
                                "Pick a draft from the same model family, or use PromptLookupDrafter().")
        # Fingerprints are computed by load_model, so no tokenizer file is read here.
        if draft.folder and target.folder and draft.vocabulary_fingerprint != target.vocabulary_fingerprint:
            raise WorkbookError(f"The draft ({draft.name}) and the target ({target.name}) have vocabularies of the same "
                                "size but different tokenizers, so a token id means different text to each. Pick a draft "
                                "that ships the target's tokenizer, or use PromptLookupDrafter().")
        if draft.device != target.device:
            raise WorkbookError(f"The draft is on {draft.device} and the target on {target.device}; load both on one device.")
        check_context(draft, rows, "draft model")

    def prefill(self, tokens: list[int]) -> None:
        """Start an empty cache and fill it with every token but the last (the pending one), as the target does."""
        self.cache, self.forwards = self.model.new_cache(self.capacity), 0
        if len(tokens) > 1:
            self.model(torch.tensor([tokens[:-1]], device=self.model.device), cache=self.cache)
            self.forwards += 1

    def propose(self, tokens: list[int], k: int, temperature: float, top_p: float,
                generator: torch.Generator | None) -> tuple[list[int], torch.Tensor | None]:
        """k tokens drafted one at a time, and the distributions q they were drawn from (None when greedy)."""
        ids = torch.tensor([tokens[self.cache.length:]], device=self.model.device)  # rows not cached yet
        drafted, q_rows = [], []
        for _ in range(k):
            logits = self.model(ids, cache=self.cache)[0, -1]
            self.forwards += 1
            if temperature == 0:
                token = logits.argmax()
            else:
                q_rows.append(next_token_probs(logits, temperature, top_p))
                token = torch.multinomial(q_rows[-1], 1, generator=generator)[0]
            drafted.append(token)
            if self.min_confidence and self.confidence(logits, token, q_rows) < self.min_confidence:
                break
            ids = token.view(1, 1)
        # Tokens stay tensors inside the loop so a GPU is not made to wait (unless a confidence stop
        # must look at a probability); one transfer here.
        return torch.stack(drafted).tolist(), torch.stack(q_rows) if q_rows else None

    @staticmethod
    def confidence(logits: torch.Tensor, token: torch.Tensor, q_rows: list[torch.Tensor]) -> float:
        """The draft's own probability for the token it just proposed."""
        q = q_rows[-1] if q_rows else torch.softmax(logits.float(), dim=-1)
        return float(q[token])

    def rollback(self, keep: int) -> None:
        """Drop the rows of rejected drafts; the last draft was never fed, so there may be fewer than `keep`."""
        self.cache.crop(min(self.cache.length, keep))


def as_drafter(draft: Transformer | Drafter, capacity: int, min_confidence: float = 0.0) -> Drafter:
    """The drafter for one request: anything with the `Drafter` methods is used as it is; a model drafts through a
    `ModelDrafter`, which gives it the cache of its own that a plain model lacks."""
    if all(callable(getattr(draft, name, None)) for name in DRAFTER_METHODS):
        return draft
    return ModelDrafter(draft, capacity, min_confidence)


# ----- acceptance rules -------------------------------------------------------------------------

def accept_greedy(proposed: list[int], target_choice: list[int]) -> int:
    """How many proposals match the target's own greedy choice at their position (stops at the first miss)."""
    n = 0
    while n < len(proposed) and proposed[n] == target_choice[n]:
        n += 1
    return n


def acceptance_probability(p_x: float, q_x: float) -> float:
    """Keep a draft token x with probability min(1, p(x) / q(x)): always when the target likes it at least as much."""
    return min(1.0, p_x / q_x)


def residual_distribution(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """What to draw from after a rejection: norm(max(0, p − q)), the mass the draft under-proposed."""
    residual = (p - q).clamp_min(0)
    total = residual.sum()
    # Zero only when p == q up to rounding, and then a rejection is a rounding accident: p is right.
    return residual / total if total > 0 else p


def certain_q(proposed: list[int], vocab: int, device: torch.device) -> torch.Tensor:
    """q of a drafter sure of each guess: one-hot rows, so a guess x passes with probability min(1, p(x)/1) = p(x)."""
    return torch.nn.functional.one_hot(torch.tensor(proposed, dtype=torch.long, device=device), vocab).float()


def accept_sampled(proposed: list[int], p: torch.Tensor, q: torch.Tensor,
                   generator: torch.Generator | None) -> tuple[int, int]:
    """Speculative sampling: (number of accepted proposals, the corrected or bonus token).

    p: target distributions at the k+1 positions [k+1, vocab]; q: draft distributions [k, vocab].
    """
    for i, x in enumerate(proposed):
        u = float(torch.rand((), generator=generator, device=p.device))
        if u >= acceptance_probability(float(p[i, x]), float(q[i, x])):
            return i, sample(residual_distribution(p[i], q[i]), generator)
    return len(proposed), sample(p[len(proposed)], generator)


def next_k(k: int, n_accepted: int, n_proposed: int, k_max: int) -> int:
    """Adaptive k: one more after a fully accepted draft, one fewer after a rejection in its first half."""
    if n_proposed == 0:
        return k
    if n_accepted == n_proposed:
        return min(k + 1, k_max)
    if n_accepted < n_proposed // 2:
        return max(k - 1, 1)
    return k


# ----- what to expect ---------------------------------------------------------------------------

def expected_tokens_per_pass(alpha: float, k: int) -> float:
    """Tokens a verify pass yields on average when each draft passes with probability α: (1 − α^(k+1)) / (1 − α)."""
    return k + 1.0 if alpha >= 1 else (1 - alpha ** (k + 1)) / (1 - alpha)


def predicted_speedup(alpha: float, k: int, c: float) -> float:
    """Leviathan et al.'s expected speedup over plain decoding: (1 − α^(k+1)) / ((1 − α)(k·c + 1)).

    c is the cost of one draft forward relative to one target forward; the formula assumes
    verifying k+1 tokens costs the target no more than decoding one.
    """
    return expected_tokens_per_pass(alpha, k) / (k * c + 1)


# ----- results ----------------------------------------------------------------------------------

@dataclass
class SpeculativeStep:
    """One draft-and-verify step, for the lessons' step-by-step pictures."""

    k: int  # how many drafts were asked for
    proposed: list[int]  # what the drafter proposed (prompt lookup may find fewer than k)
    accepted: list[bool]  # one per proposal; everything after the first rejection is discarded too
    next_token: int  # the target's own token: the correction after a rejection, or the bonus when all pass
    target_rows_before: int  # target cache rows right after the verify pass, rejected rows included
    target_rows_after: int  # ... after rolling back
    draft_rows_before: int | None  # the same for the drafter's cache (None for a drafter without one)
    draft_rows_after: int | None

    @property
    def n_accepted(self) -> int:
        return sum(self.accepted)

    @property
    def bonus(self) -> bool:
        """True when every proposal passed, so the target's token is a free extra one."""
        return self.n_accepted == len(self.proposed)

    @property
    def new_tokens(self) -> list[int]:
        return self.proposed[:self.n_accepted] + [self.next_token]


@dataclass
class SpeculativeResult:
    """New tokens from speculative decoding, and how they were made."""

    tokens: list[int]
    steps: list[SpeculativeStep]
    target_forwards: int  # prefill included
    draft_forwards: int  # 0 for a drafter without a model (prompt lookup)
    seconds: dict[str, float]  # per phase: prefill, draft, verify, other
    finish_reason: Literal["length", "eos"]

    @property
    def proposed(self) -> int:
        return sum(len(s.proposed) for s in self.steps)

    @property
    def accepted(self) -> int:
        return sum(s.n_accepted for s in self.steps)

    @property
    def acceptance_rate(self) -> float:
        """Accepted drafts / proposed drafts (0 when nothing was proposed); drafts after a rejection count as lost."""
        return self.accepted / self.proposed if self.proposed else 0.0

    @property
    def judged(self) -> int:
        """Drafts the target actually ruled on: every accepted one, plus the first rejected one of a step."""
        return sum(s.n_accepted + (not s.bonus) for s in self.steps)

    @property
    def per_token_acceptance(self) -> float:
        """α as in Leviathan et al.: the chance that one draft token passes, estimated as accepted / judged.

        This is the α of the expected-speedup formula. It is above `acceptance_rate` when k > 1,
        because the drafts after a rejection are thrown away unjudged.
        """
        return self.accepted / self.judged if self.judged else 0.0

    @property
    def tokens_per_target_pass(self) -> float:
        """New tokens per verify pass; plain decoding gets exactly 1."""
        return len(self.tokens) / len(self.steps)

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds.values())

    @property
    def tokens_per_second(self) -> float:
        return len(self.tokens) / self.total_seconds


@dataclass
class TargetResult:
    """New tokens from plain decoding with the target alone: the baseline speculative decoding must match."""

    tokens: list[int]
    target_forwards: int
    seconds: float
    finish_reason: Literal["length", "eos"]

    @property
    def tokens_per_second(self) -> float:
        return len(self.tokens) / self.seconds


# ----- checking a request -----------------------------------------------------------------------

def checked_prompt(target: Transformer, input_ids, max_new_tokens, temperature, top_p, eos_token_id) -> list[int]:
    """The prompt as a list of ids, once everything a target-only or speculative request needs is checked."""
    if not isinstance(target, Transformer):
        raise WorkbookError(f"target must be a workbook Transformer (workbook.load_model), not {type(target).__name__}.")
    check_sampling(temperature, top_p)
    vocab = target.config.vocab_size
    if eos_token_id is not None and (isinstance(eos_token_id, bool) or not isinstance(eos_token_id, Integral)
                                     or not 0 <= eos_token_id < vocab):
        raise WorkbookError(f"eos_token_id must be None or a token id in 0..{vocab - 1}, not {eos_token_id!r}.")
    return check_request(target, input_ids, max_new_tokens)


def stop_at_eos(tokens: list[int], eos_token_id: int | None) -> tuple[list[int], bool]:
    """Cut `tokens` just after the first end-of-sequence token, if there is one."""
    if eos_token_id is not None and eos_token_id in tokens:
        return tokens[:tokens.index(eos_token_id) + 1], True
    return tokens, False


# ----- decoding ---------------------------------------------------------------------------------

def target_generate(target: Transformer, input_ids, max_new_tokens: int = 64, temperature: float = 0.0,
                    top_p: float = 1.0, seed: int | None = None, eos_token_id: int | None = None) -> TargetResult:
    """Plain decoding with the target and a KV cache, one forward pass per new token (the baseline)."""
    prompt = checked_prompt(target, input_ids, max_new_tokens, temperature, top_p, eos_token_id)
    device = target.device
    cache = target.new_cache(request_rows(len(prompt), max_new_tokens))
    generator = make_generator(seed, device)
    with Stopwatch(device) as clock:
        logits = target(torch.tensor([prompt], device=device), cache=cache)[0, -1]
        tokens = [choose_token(logits, temperature, top_p, generator)]
        while len(tokens) < max_new_tokens and tokens[-1] != eos_token_id:
            logits = target(torch.tensor([tokens[-1:]], device=device), cache=cache)[0, -1]
            tokens.append(choose_token(logits, temperature, top_p, generator))
    return TargetResult(tokens, target_forwards=len(tokens), seconds=clock.elapsed_s,
                        finish_reason="eos" if tokens[-1] == eos_token_id else "length")


def speculative_generate(target: Transformer, draft: Transformer | Drafter, input_ids,
                         k: int = 4, max_new_tokens: int = 64, temperature: float = 0.0, top_p: float = 1.0,
                         seed: int | None = None, adaptive_k: bool = False, k_max: int | None = None,
                         min_draft_confidence: float = 0.0, eos_token_id: int | None = None) -> SpeculativeResult:
    """Generate up to `max_new_tokens` after `input_ids`: `draft` guesses, `target` verifies in one pass per step.

    `draft` is a smaller `Transformer` sharing the target's tokenizer, a `PromptLookupDrafter`,
    or any other `Drafter`.

    Greedy (temperature 0) output equals `target_generate`'s token for token; sampled output
    follows the target's distribution exactly. With `adaptive_k`, k starts at `k` and moves
    within [1, k_max] (default 2k) as drafts are accepted or rejected. With `min_draft_confidence`,
    a draft model stops before k once it proposes a token it gives less than that probability
    (k is then a ceiling); either way the output stays exact, since only the draft decides.
    """
    prompt = checked_prompt(target, input_ids, max_new_tokens, temperature, top_p, eos_token_id)
    check_whole("k", k, 1)
    k_max = 2 * k if k_max is None else k_max
    check_whole("k_max", k_max, k)
    if not 0 <= min_draft_confidence < 1:
        raise WorkbookError(f"min_draft_confidence must be in [0, 1) (0 never stops a draft early), not {min_draft_confidence}.")
    rows = request_rows(len(prompt), max_new_tokens)
    drafter = as_drafter(draft, rows, min_draft_confidence)
    drafter.check_compatible(target, rows)

    device = target.device
    cache = target.new_cache(rows)
    generator = make_generator(seed, device)
    tokens, steps, target_forwards = list(prompt), [], 0
    seconds = dict.fromkeys(PHASES, 0.0)
    with Stopwatch(device) as clock:
        if len(prompt) > 1:
            target(torch.tensor([prompt[:-1]], device=device), cache=cache)
            target_forwards += 1
        drafter.prefill(prompt)
        seconds["prefill"] += clock.lap()

        while len(tokens) - len(prompt) < max_new_tokens:
            # Never draft past max_new_tokens: the step adds at most k_step + 1 tokens.
            k_step = min(k, max_new_tokens - (len(tokens) - len(prompt)) - 1)
            proposed, q = drafter.propose(tokens, k_step, temperature, top_p, generator) if k_step else ([], None)
            seconds["draft"] += clock.lap()

            # One target pass scores the pending token and every proposal: k+1 next-token distributions.
            logits = target(torch.tensor([tokens[cache.length:] + proposed], device=device), cache=cache)[0]
            target_forwards += 1
            n_accepted, next_token = verify(logits, proposed, q, temperature, top_p, generator)
            seconds["verify"] += clock.lap()

            keep = len(tokens) + n_accepted  # rows of the text so far plus the accepted drafts; next_token is pending
            step = SpeculativeStep(k_step, proposed, [i < n_accepted for i in range(len(proposed))], next_token,
                                   *roll_back(cache, drafter, keep))
            steps.append(step)
            tokens += step.new_tokens
            if adaptive_k:
                k = next_k(k, n_accepted, len(proposed), k_max)
            seconds["other"] += clock.lap()
            if eos_token_id in step.new_tokens:
                break

    new, hit_eos = stop_at_eos(tokens[len(prompt):], eos_token_id)
    return SpeculativeResult(new, steps, target_forwards, drafter.forwards, seconds,
                             finish_reason="eos" if hit_eos else "length")


def verify(logits: torch.Tensor, proposed: list[int], q: torch.Tensor | None, temperature: float, top_p: float,
           generator: torch.Generator | None) -> tuple[int, int]:
    """How many proposals the target accepts, and its own next token, from its logits at the k+1 positions."""
    if temperature == 0:
        choice = logits.argmax(-1).tolist()
        n_accepted = accept_greedy(proposed, choice)
        return n_accepted, choice[n_accepted]
    if q is None:  # the drafter was sure of each guess
        q = certain_q(proposed, logits.shape[-1], logits.device)
    return accept_sampled(proposed, next_token_probs(logits, temperature, top_p), q, generator)


def roll_back(cache: KVCache, drafter: Drafter, keep: int) -> tuple[int, int, int | None, int | None]:
    """Crop both caches to `keep` rows; their lengths before and after, for the trace."""
    target_before, draft_before = cache.length, drafter.cache_rows
    cache.crop(keep)
    drafter.rollback(keep)
    return target_before, keep, draft_before, drafter.cache_rows
