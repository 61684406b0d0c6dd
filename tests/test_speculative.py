"""Speculative decoding is exact: greedy output equals the target's own, sampling keeps its distribution."""

import copy
import inspect
import json
import math
import shutil
from collections import Counter

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

import workbook
import workbook.speculative as spec
from workbook import ContextLengthError, EmptyInputError, WorkbookError, checkpoints
from workbook.paths import MODELS_DIR
from workbook.sampling import next_token_probs
from workbook.speculative import (Drafter, ModelDrafter, PromptLookupDrafter, accept_greedy, acceptance_probability,
                                  residual_distribution, speculative_generate, target_generate)

VOCAB = 320
KS = [1, 2, 3, 5, 8]

pytestmark = pytest.mark.usefixtures("one_thread")


def save_llama(folder, *, vocab=VOCAB, layers=2, hidden=64, heads=4, kv_heads=2, init=0.02, seed=0, weights_from=None):
    """A random Llama checkpoint; with `weights_from`, its first `layers` layers copied from that model."""
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                         num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=96,
                         initializer_range=init, tie_word_embeddings=False)
    model = LlamaForCausalLM(config).eval()
    if weights_from is not None:
        model.load_state_dict(weights_from.state_dict(), strict=False)  # the later layers are left out
    model.save_pretrained(folder)
    return model


def damp_later_layers(model, factor):
    """Shrink what every layer but the first adds to the residual, so the first layer alone often predicts the same."""
    with torch.no_grad():
        for layer in model.model.layers[1:]:
            layer.self_attn.o_proj.weight.mul_(factor)
            layer.mlp.down_proj.weight.mul_(factor)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A target and drafts that agree never, partly, and always with it (all with the same vocabulary)."""
    root = tmp_path_factory.mktemp("speculative")
    target_hf = save_llama(root / "target", layers=3)
    damp_later_layers(target_hf, 0.2)
    target_hf.save_pretrained(root / "target")
    save_llama(root / "small", layers=1, hidden=32, heads=2, kv_heads=1, seed=1)
    save_llama(root / "truncated", layers=1, weights_from=target_hf)  # a layer-skipping draft: agrees often
    save_llama(root / "other-vocab", vocab=VOCAB - 20, layers=1, hidden=32, heads=2, kv_heads=1)
    torch.manual_seed(2)
    for name, layers in (("gpt2", 2), ("gpt2-draft", 1)):
        GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_embd=64, n_layer=layers, n_head=4, n_positions=96)).save_pretrained(root / name)
    loaded = {name: workbook.load_model(root / name, device="cpu")
              for name in ("target", "small", "truncated", "other-vocab", "gpt2", "gpt2-draft")}
    loaded["self"] = loaded["target"]
    return loaded


def prompts(n=6, vocab=VOCAB):
    """Prompts of many lengths, one token included; the later ones repeat a phrase, as documents do."""
    g = torch.Generator().manual_seed(11)
    out = [torch.randint(0, vocab, (length,), generator=g).tolist() for length in (1, 2, 5, 9)]
    phrase = torch.randint(0, vocab, (6,), generator=g).tolist()
    out += [phrase * 3 + phrase[:2], torch.randint(0, vocab, (10,), generator=g).tolist() + phrase * 2 + phrase[:3]]
    return out[:n]


@pytest.fixture(scope="module")
def reference(models):
    """Target-only greedy output for every prompt: what speculative decoding must reproduce."""
    return {name: [target_generate(models[name], p, max_new_tokens=20).output_ids for p in prompts()]
            for name in ("target", "gpt2")}


# ----- greedy: the same tokens as the target alone ------------------------------------------------

@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("draft", ["small", "truncated", "self", "prompt-lookup"])
def test_greedy_speculative_equals_target_greedy(models, reference, draft, k):
    drafter = PromptLookupDrafter(max_ngram=3, min_ngram=1) if draft == "prompt-lookup" else models[draft]
    for prompt, expected in zip(prompts(), reference["target"]):
        result = speculative_generate(models["target"], drafter, prompt, k=k, max_new_tokens=20)
        assert result.output_ids == expected


@pytest.mark.parametrize("settings", [dict(k=8, min_draft_confidence=0.5), dict(k=2, adaptive_k=True, k_max=6)])
def test_greedy_equality_holds_when_k_varies(models, reference, settings):
    for prompt, expected in zip(prompts(), reference["target"]):
        assert speculative_generate(models["target"], models["truncated"], prompt, max_new_tokens=20, **settings).output_ids == expected


def test_a_confidence_stop_shortens_drafts(models):
    prompt = prompts()[4]
    full = speculative_generate(models["target"], models["truncated"], prompt, k=8, max_new_tokens=20)
    cut = speculative_generate(models["target"], models["truncated"], prompt, k=8, max_new_tokens=20, min_draft_confidence=0.9)
    assert cut.speculation.draft_forwards < full.speculation.draft_forwards and cut.output_ids == full.output_ids


def test_greedy_equality_holds_for_the_gpt2_family_and_tensor_input(models, reference):
    for prompt, expected in zip(prompts(), reference["gpt2"]):
        ids = torch.tensor([prompt])
        assert speculative_generate(models["gpt2"], models["gpt2-draft"], ids, k=3, max_new_tokens=20).output_ids == expected


def test_the_drafts_exercise_both_acceptance_and_rejection(models):
    """Guard for the equality tests above: a suite that only ever accepts (or rejects) proves little."""
    rates = {}
    for draft in ("small", "truncated", "self"):
        results = [speculative_generate(models["target"], models[draft], p, k=4, max_new_tokens=20) for p in prompts()]
        rates[draft] = sum(r.speculation.accepted for r in results) / sum(r.speculation.proposed for r in results)
    lookup = [speculative_generate(models["target"], PromptLookupDrafter(), p, k=4, max_new_tokens=20) for p in prompts()]
    assert rates["self"] == 1.0
    assert 0.2 < rates["truncated"] < 0.95
    assert rates["small"] < 0.5
    proposed, accepted = sum(r.speculation.proposed for r in lookup), sum(r.speculation.accepted for r in lookup)
    assert proposed > 0 and 0 < accepted < proposed


def test_adaptive_k_grows_on_acceptance_shrinks_on_rejection_and_keeps_the_output(models, reference):
    prompt, expected = prompts()[3], reference["target"][3]
    grown = speculative_generate(models["target"], models["self"], prompt, k=2, k_max=5, adaptive_k=True, max_new_tokens=20)
    shrunk = speculative_generate(models["target"], models["small"], prompt, k=4, adaptive_k=True, max_new_tokens=20)
    assert grown.output_ids == expected and shrunk.output_ids == expected
    assert [s.k for s in grown.speculation.steps[:4]] == [2, 3, 4, 5]
    assert all(1 <= s.k <= 5 for s in grown.speculation.steps)
    assert [s.k for s in shrunk.speculation.steps[:5]] == [4, 3, 2, 1, 1]  # this draft is never right


def test_the_trace_records_every_step_and_rollback(models):
    prompt = prompts()[2]
    result = speculative_generate(models["target"], models["truncated"], prompt, k=4, max_new_tokens=20)
    produced = 0
    for step in result.speculation.steps:
        n = step.n_accepted
        assert step.accepted == [True] * n + [False] * (len(step.proposed) - n)
        # Before rollback the target holds a row for the pending token and every proposal...
        assert step.target_rows_before == len(prompt) + produced + len(step.proposed)
        # ...after it, rows for everything accepted; the new token is the next pending one.
        produced += n + 1
        assert step.target_rows_after == len(prompt) + produced - 1
        assert step.target_rows_before - step.target_rows_after == len(step.proposed) - n
        # The draft never feeds its own last proposal, and keeps no row the target dropped.
        if step.proposed:
            assert step.draft_rows_before == step.target_rows_before - 1
        assert step.draft_rows_after == min(step.draft_rows_before, step.target_rows_after)
    assert [t for step in result.speculation.steps for t in step.new_tokens] == result.output_ids
    assert result.speculation.target_forwards == len(result.speculation.steps) + 1  # a verify pass per step, and the prefill
    assert result.speculation.draft_forwards == result.speculation.proposed + 1
    trace = result.speculation
    assert trace.tokens_per_target_pass == pytest.approx(1 + trace.accepted / len(trace.steps))
    assert set(trace.seconds) == {"prefill", "draft", "verify", "other"} and trace.tokens_per_second > 0


def test_generation_stops_at_the_end_of_sequence_token(models, reference):
    prompt, expected = prompts()[1], reference["target"][1]
    eos = expected[6]
    cut = expected[:expected.index(eos) + 1]
    result = speculative_generate(models["target"], models["truncated"], prompt, k=3, max_new_tokens=20, eos_token_id=eos)
    plain = target_generate(models["target"], prompt, max_new_tokens=20, eos_token_id=eos)
    assert result.output_ids == cut == plain.output_ids
    assert result.finish_reason == plain.finish_reason == "stop"


def test_prompt_lookup_proposes_what_followed_the_latest_match():
    drafter = PromptLookupDrafter(max_ngram=3, min_ngram=1)
    assert drafter.propose([1, 2, 9, 1, 2, 7, 1, 2], k=2) == ([7, 1], None)  # the most recent "1 2" wins
    assert drafter.propose([5, 6, 7, 8, 6, 7], k=5) == ([8, 6, 7], None)  # fewer than k left after the match
    assert drafter.propose([1, 2, 3], k=4) == ([], None)  # nothing repeats
    assert PromptLookupDrafter(max_ngram=2, min_ngram=2).propose([4, 1, 4, 2, 4], k=2) == ([], None)  # "2 4" never seen before
    # q stays None when sampling too: a lookup is sure of its guess, so its q is one-hot.
    assert drafter.propose([1, 2, 9, 1, 2], 1, 0.8, 0.9, torch.Generator()) == ([9], None)


# ----- drafters behind one protocol --------------------------------------------------------------

class FixedTokenDrafter:
    """A third drafter, defined only here: always guesses one token, and records what speculative decoding told it."""

    forwards = 0
    cache_rows = None

    def __init__(self, token: int):
        self.token, self.prompts, self.kept = token, [], []

    def check_compatible(self, target, rows):
        """Any target will do."""

    def prefill(self, tokens):
        self.prompts.append(list(tokens))

    def propose(self, tokens, k, temperature, top_p, generator):
        return [self.token] * k, None  # None: sure of each guess

    def rollback(self, keep):
        self.kept.append(keep)


def test_a_third_drafter_plugs_in_and_greedy_output_stays_the_target_s(models, reference):
    results = []
    for prompt, expected in zip(prompts(), reference["target"]):
        drafter = FixedTokenDrafter(Counter(expected).most_common(1)[0][0])  # right now and then
        result = speculative_generate(models["target"], drafter, prompt, k=3, max_new_tokens=20)
        assert result.output_ids == expected
        assert drafter.prompts == [prompt]
        assert drafter.kept == [step.target_rows_after for step in result.speculation.steps]  # rolled back with the target
        assert result.speculation.draft_forwards == 0
        assert all(step.draft_rows_before is None for step in result.speculation.steps)
        results.append(result)
    assert 0 < sum(r.speculation.accepted for r in results) < sum(r.speculation.proposed for r in results)  # both outcomes happened


def test_both_shipped_drafters_follow_the_drafter_protocol(models):
    lookup, model = PromptLookupDrafter(), ModelDrafter(models["small"], capacity=16)
    text = [5, 6, 7, 5, 6]
    for drafter in (lookup, model):
        for name, member in vars(Drafter).items():
            if name.startswith("_"):
                continue
            assert name in dir(drafter)
            if callable(member):  # the same parameters, in the same order, as the protocol's method
                assert list(inspect.signature(getattr(drafter, name)).parameters) == \
                    list(inspect.signature(member).parameters)[1:]
        drafter.check_compatible(models["target"], rows=16)
        drafter.prefill(text)
        proposed, q = drafter.propose(text, 2, 1.0, 1.0, torch.Generator().manual_seed(0))
        assert len(proposed) == 2 and all(0 <= t < VOCAB for t in proposed)
        assert q is None or q.shape == (2, VOCAB)
        drafter.rollback(len(text))
    assert (lookup.forwards, lookup.cache_rows) == (0, None)
    assert model.forwards == 3  # the prefill, then one forward per guess
    assert model.cache_rows == len(text)  # the second guess was never fed; the first was rolled back


# ----- sampling: the target's distribution, exactly -----------------------------------------------

SMALL_VOCAB = 12


def tv_bound(n_samples: int, n_outcomes: int, delta: float = 1e-6) -> float:
    """A total-variation distance an empirical distribution of n samples exceeds with probability < delta.

    Bretagnolle–Huber–Carol: P(||p̂ − p||₁ ≥ ε) ≤ 2^m · exp(−n ε² / 2), and TV = ||·||₁ / 2.
    """
    return math.sqrt((n_outcomes * math.log(2) + math.log(1 / delta)) / (2 * n_samples))


@pytest.fixture(scope="module")
def small_pair(tmp_path_factory):
    """A target and an unrelated draft over 12 tokens, with peaked, very different distributions."""
    root = tmp_path_factory.mktemp("small-vocab")
    common = dict(vocab=SMALL_VOCAB, heads=2, kv_heads=1, init=0.2)
    save_llama(root / "target", layers=2, hidden=32, seed=0, **common)
    save_llama(root / "draft", layers=1, hidden=16, seed=100, **common)
    return workbook.load_model(root / "target", device="cpu"), workbook.load_model(root / "draft", device="cpu")


def exact_marginals(target, prompt, n_tokens, temperature, top_p):
    """The target's distribution of each of the first n new tokens, by enumerating every continuation."""
    prefixes, weights, marginals = [[]], torch.ones(1), []
    for _ in range(n_tokens):
        probs = next_token_probs(target(torch.tensor([prompt + p for p in prefixes]))[:, -1], temperature, top_p)
        joint = weights[:, None] * probs
        marginals.append(joint.sum(0))
        prefixes = [p + [t] for p in prefixes for t in range(SMALL_VOCAB)]
        weights = joint.flatten()
    return torch.stack(marginals)


def sampled_marginals(generate, n_samples, n_tokens):
    counts = torch.zeros(n_tokens, SMALL_VOCAB)
    for seed in range(n_samples):
        for position, token in enumerate(generate(seed)[:n_tokens]):
            counts[position, token] += 1
    return counts / n_samples


N_SAMPLES, N_TOKENS = 300, 3



def tv_per_position(small_pair, drafter_name, prompt, temperature, top_p):
    """Total-variation distance between sampled and exact distributions of each of the first new tokens."""
    target, draft = small_pair
    drafter = {"prompt-lookup": PromptLookupDrafter(max_ngram=2),
               "fixed token": FixedTokenDrafter(int(target(torch.tensor([prompt]))[0, -1].argmax()))}.get(drafter_name, draft)
    confidence = 0.2 if "stopping" in drafter_name else 0.0
    exact = exact_marginals(target, prompt, N_TOKENS, temperature, top_p)
    sampled = sampled_marginals(lambda seed: speculative_generate(
        target, drafter, prompt, k=2, max_new_tokens=N_TOKENS, temperature=temperature, top_p=top_p, seed=seed,
        min_draft_confidence=confidence).output_ids, N_SAMPLES, N_TOKENS)
    return 0.5 * (sampled - exact).abs().sum(-1)


@pytest.mark.parametrize("drafter,prompt,temperature,top_p", [
    ("draft", [3, 5], 1.0, 1.0),
    ("draft", [3, 5], 0.7, 0.8),  # top-p zeroes some tokens of p and q: drafts outside the target's nucleus must go
    ("prompt-lookup", [3, 5, 7, 3, 5, 7, 3, 5], 1.0, 1.0),  # a lookup's q is one-hot on its guess
    ("draft, stopping below 0.2", [3, 5], 1.0, 1.0),  # stops after 1 or 2 drafts, as the draft alone decides: still exact
    ("fixed token", [3, 5], 1.0, 1.0),  # a third drafter that is sure of its guess (q = None, so one-hot)
])
def test_speculative_sampling_keeps_the_target_distribution(small_pair, drafter, prompt, temperature, top_p):
    tv = tv_per_position(small_pair, drafter, prompt, temperature, top_p)
    assert (tv < tv_bound(N_SAMPLES, SMALL_VOCAB)).all(), f"TV per position {tv.tolist()}"


def test_always_accepting_the_draft_fails_the_same_test(small_pair, monkeypatch):
    """Negative control: the statistical test above is strong enough to catch a wrong acceptance rule."""
    target, draft = small_pair
    p = next_token_probs(target(torch.tensor([[3, 5]]))[0, -1], 1.0)
    q = next_token_probs(draft(torch.tensor([[3, 5]]))[0, -1], 1.0)
    assert 0.5 * (p - q).abs().sum() > 2 * tv_bound(N_SAMPLES, SMALL_VOCAB)  # the pair differs enough to tell
    monkeypatch.setattr(spec, "acceptance_probability", lambda p_x, q_x: 1.0)
    tv = tv_per_position(small_pair, "draft", [3, 5], 1.0, 1.0)
    assert tv[0] > tv_bound(N_SAMPLES, SMALL_VOCAB)


def test_seeded_sampling_repeats(small_pair):
    target, draft = small_pair
    runs = [speculative_generate(target, draft, [1, 2], k=3, max_new_tokens=12, temperature=1.0, seed=s).output_ids
            for s in (5, 5, 6)]
    assert runs[0] == runs[1] != runs[2]


def test_acceptance_rule_pieces():
    assert acceptance_probability(0.2, 0.4) == pytest.approx(0.5)
    assert acceptance_probability(0.5, 0.25) == 1.0
    p, q = torch.tensor([0.5, 0.3, 0.2]), torch.tensor([0.2, 0.5, 0.3])
    assert torch.allclose(residual_distribution(p, q), torch.tensor([1.0, 0.0, 0.0]))
    assert torch.equal(residual_distribution(p, p), p)
    assert accept_greedy([4, 5, 6], [4, 5, 9, 1]) == 2 and accept_greedy([4], [4, 2]) == 1


# ----- the shipped pair --------------------------------------------------------------------------

@pytest.mark.skipif(not (MODELS_DIR / "tiny" / "config.json").is_file() or not (MODELS_DIR / "tiny-draft" / "config.json").is_file(),
                    reason="the shipped models data/models/tiny and tiny-draft are not there yet (train them with workbook.training.train)")
def test_shipped_pair_greedy_equals_target_greedy():
    target, draft = workbook.load_model("tiny", device="cpu"), workbook.load_model("tiny-draft", device="cpu")
    tokenizer = workbook.load_tokenizer("tiny")
    texts = ["The io module provides the Python interfaces to stream handling.",
             "Return a k sized list of population elements chosen with replacement.",
             "def add(a, b):\n    return a + b\n\nprint(add(2, 3))"]
    accepted = 0
    for text in texts:
        ids = tokenizer.encode(text)
        expected = target_generate(target, ids, max_new_tokens=24).output_ids
        for drafter, k in ((draft, 2), (draft, 5), (PromptLookupDrafter(), 4)):
            result = speculative_generate(target, drafter, ids, k=k, max_new_tokens=24)
            assert result.output_ids == expected
            accepted += result.speculation.accepted
    assert accepted > 0  # a trained pair agrees at least sometimes


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU; the CPU twins are the tests above")
def test_speculative_decoding_on_cuda(models):
    target, draft = (copy.deepcopy(models[name]).to("cuda") for name in ("target", "truncated"))
    for prompt in prompts(3):
        expected = target_generate(target, prompt, max_new_tokens=20).output_ids
        assert speculative_generate(target, draft, prompt, k=4, max_new_tokens=20).output_ids == expected
    sampled = [speculative_generate(target, drafter, prompts()[4], k=3, max_new_tokens=12, temperature=1.0, seed=3).output_ids
               for drafter in (draft, draft, PromptLookupDrafter())]
    assert sampled[0] == sampled[1] and len(sampled[2]) == 12


# ----- errors: clear, and nothing touched --------------------------------------------------------

@pytest.mark.parametrize("change,error,message", [
    (dict(draft="other-vocab"), WorkbookError, "vocabulary"),
    (dict(draft="not a model"), WorkbookError, "draft must be"),
    (dict(k=0), WorkbookError, "k must be"),
    (dict(k=2.5), WorkbookError, "k must be"),
    (dict(adaptive_k=True, k=4, k_max=2), WorkbookError, "k_max"),
    (dict(min_draft_confidence=1.5), WorkbookError, "min_draft_confidence"),
    (dict(min_draft_confidence="high"), WorkbookError, "min_draft_confidence"),
    (dict(temperature=-0.5), WorkbookError, "temperature"),
    (dict(top_p=0.0), WorkbookError, "top_p"),
    (dict(top_p=1.5), WorkbookError, "top_p"),
    (dict(input_ids=[]), EmptyInputError, "empty"),
    (dict(input_ids=torch.zeros(1, 0, dtype=torch.long)), EmptyInputError, "empty"),
    (dict(input_ids=torch.zeros(2, 3, dtype=torch.long)), WorkbookError, "one sequence"),
    (dict(input_ids=[1, VOCAB]), WorkbookError, "0..319"),
    (dict(max_new_tokens=0), WorkbookError, "max_new_tokens"),
    (dict(max_new_tokens=90), ContextLengthError, "context of 96"),
    (dict(eos_token_id=VOCAB), WorkbookError, "eos_token_id"),
    (dict(eos_token_id=True), WorkbookError, "eos_token_id must be a whole number"),
    (dict(eos_token_id=2.0), WorkbookError, "eos_token_id must be a whole number"),
])
def test_bad_requests_get_clear_errors_before_any_work(models, change, error, message):
    target = models["target"]
    args = dict(draft="small", input_ids=torch.tensor([[1, 2, 3, 4, 5, 6, 7, 8]]), k=4, max_new_tokens=8)
    args.update(change)
    args["draft"] = models.get(args["draft"], args["draft"])
    before = args["input_ids"].clone() if isinstance(args["input_ids"], torch.Tensor) else list(args["input_ids"])
    calls = []
    hooks = [m.register_forward_pre_hook(lambda *_: calls.append(1)) for m in (target, models["small"], models["other-vocab"])]
    try:
        with pytest.raises(error, match=message):
            speculative_generate(target, **args)
    finally:
        for hook in hooks:
            hook.remove()
    assert calls == []  # refused before any forward pass, so no cache was ever filled
    after = args["input_ids"]
    assert torch.equal(after, before) if isinstance(after, torch.Tensor) else after == before


def test_target_generate_refuses_the_same_bad_settings(models):
    with pytest.raises(WorkbookError, match="temperature"):
        target_generate(models["target"], [1, 2], temperature=-1)
    with pytest.raises(EmptyInputError):
        target_generate(models["target"], [])
    with pytest.raises(WorkbookError, match="max_new_tokens"):
        target_generate(models["target"], [1, 2], max_new_tokens=0)


@pytest.mark.parametrize("kwargs", [dict(min_ngram=0), dict(max_ngram=1, min_ngram=2)])
def test_prompt_lookup_settings_are_checked(kwargs):
    with pytest.raises(WorkbookError, match="min_ngram"):
        PromptLookupDrafter(**kwargs)


def with_tokenizer(models, tmp_path, name, first_token):
    """A copy of a test checkpoint with a tokenizer.json, loaded; `first_token` is the text of token id 0."""
    folder = tmp_path / name
    shutil.copytree(models[name].folder, folder)
    vocab = {first_token: 0, **{f"t{i}": i for i in range(1, VOCAB)}}
    (folder / "tokenizer.json").write_text(json.dumps({"model": {"type": "BPE", "vocab": vocab}, "added_tokens": []}))
    return workbook.load_model(folder, device="cpu")


def test_a_draft_with_another_tokenizer_of_the_same_size_is_refused(models, tmp_path):
    target, same, other = (with_tokenizer(models, tmp_path, name, first) for name, first in
                           (("target", "a"), ("small", "a"), ("truncated", "b")))
    prompt = prompts()[2]
    assert speculative_generate(target, same, prompt, max_new_tokens=4).output_ids == target_generate(target, prompt, max_new_tokens=4).output_ids
    with pytest.raises(WorkbookError, match="different tokenizers"):
        speculative_generate(target, other, prompt, max_new_tokens=4)


def test_the_vocabulary_fingerprint_is_computed_at_load_not_while_decoding(models, tmp_path, monkeypatch):
    target, other = with_tokenizer(models, tmp_path, "target", "a"), with_tokenizer(models, tmp_path, "truncated", "b")
    assert target.vocabulary_fingerprint == checkpoints.vocabulary_fingerprint(target.folder) is not None
    assert models["target"].vocabulary_fingerprint is None  # saved without a tokenizer

    def no_reading(folder):
        raise AssertionError(f"read the tokenizer in {folder} while decoding")

    monkeypatch.setattr("workbook.checkpoints.vocabulary_fingerprint", no_reading)
    monkeypatch.setattr("workbook.model.vocabulary_fingerprint", no_reading)
    for model in (target, other):
        (model.folder / "tokenizer.json").unlink()  # and the files are not needed any more
    with pytest.raises(WorkbookError, match="different tokenizers"):
        speculative_generate(target, other, prompts()[2], max_new_tokens=4)
