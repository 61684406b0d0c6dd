"""Speculative decoding: a cheap drafter guesses k tokens, the target checks all of them in one pass.

Verifying k+1 positions costs the target little more than decoding one, because its weights
are read once either way. So a drafter (a small model, or a lookup in the prompt) proposes
`k` tokens, the target scores them in one paged step over its pool, the longest correct run is
kept plus one token from the target, and the rows of rejected guesses are rolled back
(`KVManager.truncate`) in both the target's and the draft's pages. The acceptance rule
(Leviathan et al. 2023; Chen et al. 2023) keeps the output exactly what the target alone would
produce: the same tokens when greedy, the same distribution when sampling.

A speculative request is a request like any other: the `Server` runs it on the same paged path,
beside plain requests in the same batches, with a prefix-cache hit when its prompt has one; it
asks for drafts with a `Speculation` (`Server.submit(..., speculation=Speculation(draft, k=4))`)
and returns the same `GenerationResult`, with the trace of its steps in `result.speculation`.
Its pages keep rows for every token but the last one, which is "pending": the next step feeds
it first, so its row and the drafts' rows are computed together.

Drafters sit behind one protocol, `Drafter`: a small model (`ModelDrafter`) and prompt lookup
(`PromptLookupDrafter`) ship, and any other class with the same members plugs in.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from numbers import Real
from typing import ClassVar, Protocol

import torch

from .checks import check_whole
from .engine import Engine
from .errors import WorkbookError
from .kv_manager import Allocation, KVManager
from .model import Transformer, check_context, token_list
from .page_pool import PagePool, pages_for_rows
from .paged_attention import BatchSlice, PagedBatch
from .request import GenerationResult
from .sampling import SamplingParams, next_token_probs, sample
from .server import DEFAULT_PAGE_SIZE

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


# Read off the protocol, so the check in `as_drafter` cannot drift from it: its methods and its two properties.
DRAFTER_MEMBERS = tuple(name for name in vars(Drafter) if not name.startswith("_"))


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
        check_whole("min_ngram", self.min_ngram, 1)
        check_whole("max_ngram", self.max_ngram, 1)
        if self.min_ngram > self.max_ngram:
            raise WorkbookError(f"PromptLookupDrafter needs min_ngram <= max_ngram, "
                                f"got min_ngram={self.min_ngram}, max_ngram={self.max_ngram}.")

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
    """A small draft model with pages of its own, rolled back like the target's.

    Its rows live in a private pool for the one request it drafts for, held as one `Allocation`
    of a `KVManager`; a rejection gives the rejected rows' pages back with `truncate`.
    With `min_confidence` > 0 a draft stops early, after a guess the draft itself gives less
    than that probability: later guesses would build on a likely miss, and each costs a forward.
    """

    def __init__(self, model: Transformer, capacity: int, min_confidence: float = 0.0):
        if not isinstance(model, Transformer):
            raise WorkbookError("draft must be a workbook Transformer (workbook.load_model), a PromptLookupDrafter, or a "
                                f"Drafter with the members {', '.join(DRAFTER_MEMBERS)}; not {type(model).__name__}.")
        self.model, self.capacity, self.min_confidence = model, capacity, min_confidence
        self.kv: KVManager | None = None  # made by prefill, so a refused request never allocates a pool
        self.allocation: Allocation | None = None
        self.rows = 0  # rows of the text in the draft's pages
        self.forwards = 0

    @property
    def cache_rows(self) -> int:
        """Rows in the draft model's pages (after prefill)."""
        return self.rows

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
        """Start on a fresh pool and fill it with every token but the last (the pending one), as the target does."""
        pool = PagePool(DEFAULT_PAGE_SIZE, pages_for_rows(self.capacity, DEFAULT_PAGE_SIZE))
        pool.bind(self.model)
        self.kv, self.rows, self.forwards = KVManager(pool), 0, 0
        self.allocation = self.kv.admit(tokens, rows=0, owner="draft")
        if len(tokens) > 1:
            self._forward(tokens[:-1])

    def propose(self, tokens: list[int], k: int, temperature: float, top_p: float,
                generator: torch.Generator | None) -> tuple[list[int], torch.Tensor | None]:
        """k tokens drafted one at a time, and the distributions q they were drawn from (None when greedy)."""
        ids, drafted, q_rows = tokens[self.rows:], [], []  # rows not in the pages yet
        for _ in range(k):
            logits = self._forward(ids)
            if temperature == 0:
                token = int(logits.argmax())
            else:
                q_rows.append(next_token_probs(logits, temperature, top_p))
                token = sample(q_rows[-1], generator)
            drafted.append(token)
            if self.min_confidence and self.confidence(logits, token, q_rows) < self.min_confidence:
                break
            ids = [token]
        return drafted, torch.stack(q_rows) if q_rows else None

    @staticmethod
    def confidence(logits: torch.Tensor, token: int, q_rows: list[torch.Tensor]) -> float:
        """The draft's own probability for the token it just proposed."""
        q = q_rows[-1] if q_rows else torch.softmax(logits.float(), dim=-1)
        return float(q[token])

    def rollback(self, keep: int) -> None:
        """Drop the rows of rejected drafts; the last draft was never fed, so there may be fewer than `keep`."""
        self.rows = min(self.rows, keep)
        self.kv.truncate(self.allocation, self.rows)

    def _forward(self, ids: list[int]) -> torch.Tensor:
        """One paged step of the draft over `ids` after its rows; the logits at the last of them."""
        self.kv.grow(self.allocation, self.rows + len(ids))
        batch = PagedBatch(self.kv.pool, [BatchSlice(self.allocation.page_table, self.rows, list(ids))],
                           self.model.config.sliding_window)
        logits = self.model.forward_paged(batch)[0]
        self.rows += len(ids)
        self.forwards += 1
        return logits


def as_drafter(draft: Transformer | Drafter, capacity: int, min_confidence: float = 0.0) -> Drafter:
    """The drafter for one request: anything with the `Drafter` methods is used as it is; a model drafts through a
    `ModelDrafter`, which gives it the cache of its own that a plain model lacks."""
    if all(hasattr(draft, name) for name in DRAFTER_MEMBERS):
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
class SpeculativeTrace:
    """How a speculative request's tokens were made: its steps, forward passes and time (`GenerationResult.speculation`).

    In a batch, a step's forward pass is shared with the other requests in it; its time counts
    in full for each (as "prefill" while the prompt is computed, "verify" after).
    """

    steps: list[SpeculativeStep]
    target_forwards: int  # prefill included
    draft_forwards: int  # 0 for a drafter without a model (prompt lookup)
    seconds: dict[str, float]  # per phase: prefill, draft, verify, other
    tokens: int  # new tokens the request returned

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
        return self.tokens / len(self.steps)

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds.values())

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.total_seconds


# ----- a speculative request --------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Speculation:
    """What a request asks of speculative decoding: who drafts (a smaller `Transformer` sharing the target's
    tokenizer, a `PromptLookupDrafter`, or any other `Drafter`) and how many guesses a step.

    With `adaptive_k`, k starts at `k` and moves within [1, k_max] (default 2k) as drafts are
    accepted or rejected. With `min_draft_confidence`, a draft model stops before k once it
    proposes a token it gives less than that probability (k is then a ceiling). Either way the
    output stays exact, since only the draft decides. Checked here, once.
    """

    draft: Transformer | Drafter
    k: int = 4
    adaptive_k: bool = False
    k_max: int | None = None
    min_draft_confidence: float = 0.0

    def __post_init__(self):
        check_whole("k", self.k, 1)
        object.__setattr__(self, "k_max", 2 * self.k if self.k_max is None else self.k_max)
        check_whole("k_max", self.k_max, self.k)
        confidence = self.min_draft_confidence
        if isinstance(confidence, bool) or not isinstance(confidence, Real) or not 0 <= confidence < 1:
            raise WorkbookError(f"min_draft_confidence must be in [0, 1) (0 never stops a draft early), "
                                f"not {confidence!r}.")

    def start(self, target: Transformer, rows: int) -> SpeculativeRun:
        """This request's drafter, checked against `target` for a request of `rows` rows before any work."""
        drafter = as_drafter(self.draft, rows, self.min_draft_confidence)
        drafter.check_compatible(target, rows)
        return SpeculativeRun(self, drafter)


class SpeculativeRun:
    """One speculative request inside a server: its drafter, its current k, and the trace so far.

    The server calls `propose` before a verify step and `verify` with the logits of its k+1
    positions after it; it rolls the target's pages back itself (`KVManager.truncate`).
    """

    def __init__(self, speculation: Speculation, drafter: Drafter):
        self.speculation, self.drafter, self.k = speculation, drafter, speculation.k
        self.started = False
        self.proposed: list[int] = []
        self.q: torch.Tensor | None = None
        self.k_step = 0
        self.steps: list[SpeculativeStep] = []
        self.target_forwards = 0
        self.seconds = dict.fromkeys(PHASES, 0.0)

    def propose(self, tokens: list[int], room: int, params: SamplingParams, generator: torch.Generator | None) -> list[int]:
        """Drafts to verify after `tokens` (their last one pending): at most k, and at most `room`."""
        start = time.perf_counter()
        if not self.started:
            self.drafter.prefill(tokens)
            self.started = True
            self.seconds["prefill"] += time.perf_counter() - start
            start = time.perf_counter()
        self.k_step = min(self.k, room)
        self.proposed, self.q = (self.drafter.propose(tokens, self.k_step, params.temperature, params.top_p, generator)
                                 if self.k_step else ([], None))
        self.seconds["draft"] += time.perf_counter() - start
        return self.proposed

    def verify(self, logits: torch.Tensor, rows_before: int, params: SamplingParams,
               generator: torch.Generator | None) -> tuple[list[int], int]:
        """The tokens this step adds, and the target rows to keep, from its logits at the k+1 positions [k+1, vocab].

        `rows_before` counts the target's rows after the verify pass, rejected drafts' included.
        The drafter is rolled back to the kept rows here.
        """
        start = time.perf_counter()
        proposed = self.proposed
        n_accepted, next_token = verify(logits, proposed, self.q, params, generator)
        keep = rows_before - len(proposed) + n_accepted  # the pending token's row and the accepted drafts'
        draft_before = self.drafter.cache_rows
        self.drafter.rollback(keep)
        step = SpeculativeStep(self.k_step, proposed, [i < n_accepted for i in range(len(proposed))], next_token,
                               rows_before, keep, draft_before, self.drafter.cache_rows)
        self.steps.append(step)
        if self.speculation.adaptive_k:
            self.k = next_k(self.k, n_accepted, len(proposed), self.speculation.k_max)
        self.seconds["other"] += time.perf_counter() - start
        return step.new_tokens, keep

    def trace(self, tokens: int) -> SpeculativeTrace:
        return SpeculativeTrace(self.steps, self.target_forwards, self.drafter.forwards, dict(self.seconds), tokens)


def verify(logits: torch.Tensor, proposed: list[int], q: torch.Tensor | None, params: SamplingParams,
           generator: torch.Generator | None) -> tuple[int, int]:
    """How many proposals the target accepts, and its own next token, from its logits at the k+1 positions."""
    if params.temperature == 0:
        choice = logits.argmax(-1).tolist()
        n_accepted = accept_greedy(proposed, choice)
        return n_accepted, choice[n_accepted]
    if q is None:  # the drafter was sure of each guess
        q = certain_q(proposed, logits.shape[-1], logits.device)
    p = next_token_probs(logits, params.temperature, params.top_p, params.top_k)
    return accept_sampled(proposed, p, q, generator)


# ----- one request, from ids --------------------------------------------------------------------

def target_params(target: Transformer, max_new_tokens, temperature, top_p, seed, eos_token_id) -> SamplingParams:
    """The settings of a request given as loose arguments, stopping at `eos_token_id` (None: only at max_new_tokens)."""
    if not isinstance(target, Transformer):
        raise WorkbookError(f"target must be a workbook Transformer (workbook.load_model), not {type(target).__name__}.")
    vocab = target.config.vocab_size
    if eos_token_id is not None:
        check_whole("eos_token_id", eos_token_id, 0)
        if eos_token_id >= vocab:
            raise WorkbookError(f"eos_token_id must be None or a token id in 0..{vocab - 1}, not {eos_token_id!r}.")
    return SamplingParams(max_new_tokens, temperature, top_p, seed=seed, stop_at_eos=False,
                          stop_token_ids=() if eos_token_id is None else (eos_token_id,))


def target_generate(target: Transformer, input_ids, max_new_tokens: int = 64, temperature: float = 0.0,
                    top_p: float = 1.0, seed: int | None = None, eos_token_id: int | None = None) -> GenerationResult:
    """Plain decoding with the target alone on the paged path, one step per new token: the baseline to match."""
    params = target_params(target, max_new_tokens, temperature, top_p, seed, eos_token_id)
    return Engine(target, None).generate(token_list(input_ids), params)


def speculative_generate(target: Transformer, draft: Transformer | Drafter, input_ids,
                         k: int = 4, max_new_tokens: int = 64, temperature: float = 0.0, top_p: float = 1.0,
                         seed: int | None = None, adaptive_k: bool = False, k_max: int | None = None,
                         min_draft_confidence: float = 0.0, eos_token_id: int | None = None) -> GenerationResult:
    """Generate up to `max_new_tokens` after `input_ids`: `draft` guesses, `target` verifies in one step per guess run.

    One request through an `Engine` on `target` with a `Speculation(draft, k, ...)`; the trace is
    in `result.speculation`. Greedy (temperature 0) output equals `target_generate`'s token for
    token; sampled output follows the target's distribution exactly.
    """
    params = target_params(target, max_new_tokens, temperature, top_p, seed, eos_token_id)
    speculation = Speculation(draft, k, adaptive_k, k_max, min_draft_confidence)
    return Engine(target, None).generate(token_list(input_ids), params, speculation=speculation)
