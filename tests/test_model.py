"""Our model against `transformers` on random checkpoints of every supported family, plus its errors."""

import json

import pytest
import torch

import workbook
from workbook import (ContextLengthError, EmptyInputError, Engine, UnknownModelError, UnsupportedModelError, WorkbookError,
                      speculative_generate, target_generate)

FAMILIES = ["llama", "llama3-scaled-biased-tied", "smollm-linear-rope", "qwen2", "mistral-sliding", "gpt2"]


def token_ids(batch, n, vocab=320, seed=0):
    return torch.randint(0, vocab, (batch, n), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("family", FAMILIES)
def test_logits_match_transformers(random_checkpoints, family):
    folder, reference = random_checkpoints[family]
    model = workbook.load_model(folder, device="cpu")
    ids = token_ids(2, 50)
    with torch.no_grad():
        expected = reference(ids).logits
    assert model(ids).shape == (2, 50, 320)
    assert (model(ids) - expected).abs().max().item() <= 1e-4


@pytest.mark.parametrize("family", FAMILIES)
def test_prefill_then_decode_with_cache_equals_one_full_forward(random_checkpoints, family):
    model = workbook.load_model(random_checkpoints[family][0], device="cpu")
    ids = token_ids(1, 40, seed=1)
    full = model(ids)
    cache = model.new_cache(64)
    pieces = [model(ids[:, :23], cache=cache)] + [model(ids[:, i:i + 1], cache=cache) for i in range(23, 40)]
    assert (torch.cat(pieces, dim=1) - full).abs().max().item() <= 1e-4
    assert cache.length == 40 and cache.provenance == ["computed"] * 40
    assert torch.allclose(model(ids, last_only=True), full[:, -1:], atol=1e-5)


def test_cache_rows_loaded_from_another_cache_give_the_same_logits(random_checkpoints):
    model = workbook.load_model(random_checkpoints["llama"][0], device="cpu")
    ids = token_ids(1, 30, seed=2)
    donor = model.new_cache(32)
    model(ids[:, :20], cache=donor)
    cache = model.new_cache(32)
    cache.load(*zip(*(donor.rows(layer) for layer in range(donor.num_layers))))
    logits = model(ids[:, 20:], cache=cache)
    assert cache.provenance == ["loaded"] * 20 + ["computed"] * 10
    assert cache.last_written == range(20, 30)
    assert (logits - model(ids)[:, 20:]).abs().max().item() <= 1e-4


def test_sixteen_bit_weights_are_widened_to_float32(random_checkpoints, tmp_path):
    folder, reference = random_checkpoints["llama"]
    reference.to(torch.float16).save_pretrained(tmp_path)
    reference.to(torch.float32)
    model = workbook.load_model(tmp_path, device="cpu")
    assert model.dtype == torch.float32
    half = workbook.load_model(tmp_path, device="cpu", dtype="float16")
    assert half.dtype == torch.float16 and half.rotary.inv_freq.dtype == torch.float32


def test_record_attention_returns_real_causal_weights(random_checkpoints):
    model = workbook.load_model(random_checkpoints["qwen2"][0], device="cpu")
    steps = []
    logits = model(token_ids(1, 12), record_attention=steps)
    assert len(steps) == model.config.num_layers
    weights = steps[0].weights
    assert weights.shape == (1, model.config.num_heads, 12, 12)
    assert torch.allclose(weights.sum(-1), torch.ones(1, model.config.num_heads, 12), atol=1e-5)
    assert (weights.triu(diagonal=1) == 0).all()
    assert (logits - model(token_ids(1, 12))).abs().max().item() <= 1e-4


def test_parameter_count_counts_tied_embeddings_once(random_checkpoints):
    folder, reference = random_checkpoints["qwen2"]
    assert workbook.load_model(folder, device="cpu").num_parameters() == reference.num_parameters()


# ----- clear errors, and nothing touched when they happen ----------------------------------------

def test_unknown_model_lists_the_shipped_ones():
    with pytest.raises(UnknownModelError, match="Shipped models"):
        workbook.load_model("no-such-org/no-such-model")
    with pytest.raises(UnknownModelError, match="no folder"):
        workbook.load_model("/definitely/not/here")


def test_unsupported_architecture_names_the_supported_ones(random_checkpoints, tmp_path):
    folder = random_checkpoints["llama"][0]
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "bert"
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(UnsupportedModelError, match="Supported: llama, mistral, qwen2, gpt2"):
        workbook.load_model(tmp_path)


def test_a_folder_without_safetensors_is_refused(random_checkpoints, tmp_path):
    (tmp_path / "config.json").write_text((random_checkpoints["llama"][0] / "config.json").read_text())
    with pytest.raises(UnsupportedModelError, match="safetensors"):
        workbook.load_model(tmp_path)


@pytest.mark.parametrize("bad,error,message", [
    (torch.zeros(1, 0, dtype=torch.long), EmptyInputError, "empty"),
    (torch.zeros(5, dtype=torch.long), WorkbookError, r"\[batch, seq\]"),
    (torch.zeros(1, 5), WorkbookError, "integer"),
    (torch.full((1, 3), 320), WorkbookError, "0..319"),
    ([[1, 2, 3]], WorkbookError, "tensor"),
])
def test_bad_input_gets_a_clear_error_and_leaves_the_cache_alone(random_checkpoints, bad, error, message):
    model = workbook.load_model(random_checkpoints["llama"][0], device="cpu")
    cache = model.new_cache(16)
    model(token_ids(1, 4), cache=cache)
    # Only the filled rows: rows past `length` are uninitialised memory, which may hold NaN (never equal to itself).
    before = [[t.clone() for t in cache.rows(layer)] for layer in range(model.config.num_layers)]
    with pytest.raises(error, match=message):
        model(bad, cache=cache)
    assert cache.length == 4 and len(cache.provenance) == 4
    after = [cache.rows(layer) for layer in range(model.config.num_layers)]
    assert all(torch.equal(a, b) for rows_a, rows_b in zip(before, after) for a, b in zip(rows_a, rows_b))


def test_too_long_for_the_cache_or_the_context(random_checkpoints):
    model = workbook.load_model(random_checkpoints["llama"][0], device="cpu")
    cache = model.new_cache(10)
    model(token_ids(1, 8), cache=cache)
    with pytest.raises(ContextLengthError, match="holds 10 rows"):
        model(token_ids(1, 3), cache=cache)
    assert cache.length == 8
    with pytest.raises(ContextLengthError, match="context of 96"):
        model(token_ids(1, 97))
    with pytest.raises(ContextLengthError):
        model.new_cache(97)
    with pytest.raises(ValueError):  # WorkbookError is a ValueError
        model.new_cache(0)


# ----- one request check: every entry point refuses the same bad ids in the same words -----------

@pytest.mark.parametrize("ids,max_new_tokens,error", [
    ([1, 2, 320], 1, WorkbookError),  # out of range: the vocabulary is 0..319
    ([], 1, EmptyInputError),
    ([1] * 90, 8, ContextLengthError),  # 90 + 8 - 1 = 97 positions; the context is 96
], ids=["out of range", "empty", "too long"])
def test_every_entry_point_refuses_the_same_bad_ids_with_the_same_error(small_model, small_tokenizer, ids,
                                                                        max_new_tokens, error):
    # A forward pass gets what the request would feed: the prompt and every new token but the last.
    fed = torch.tensor([ids + [1] * (max_new_tokens - 1)], dtype=torch.long)
    calls = {
        "forward": lambda: small_model(fed),
        "Engine.generate": lambda: Engine(small_model, small_tokenizer).generate(ids, max_new_tokens=max_new_tokens),
        "target_generate": lambda: target_generate(small_model, ids, max_new_tokens=max_new_tokens),
        "speculative_generate": lambda: speculative_generate(small_model, small_model, ids, max_new_tokens=max_new_tokens),
    }
    refusals = {}
    for name, call in calls.items():
        with pytest.raises(error) as caught:
            call()
        refusals[name] = (type(caught.value), str(caught.value))
    assert len(set(refusals.values())) == 1, refusals


def test_a_request_that_fills_the_context_exactly_is_accepted_everywhere(small_model, small_tokenizer):
    ids = token_ids(1, 90, seed=3)[0].tolist()  # 90 + 7 - 1 = 96 positions: the last new token is never fed back
    plain = target_generate(small_model, ids, max_new_tokens=7).output_ids
    assert len(plain) == 7
    assert Engine(small_model, small_tokenizer).generate(ids, max_new_tokens=7, stop_at_eos=False).output_ids == plain
    assert speculative_generate(small_model, small_model, ids, k=3, max_new_tokens=7).output_ids == plain


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU; the CPU twin is the 'cpu' case of this test")])])
def test_bfloat16_logits_stray_from_float32_no_further_than_transformers_own(random_checkpoints, device):
    """In bfloat16 neither implementation matches float32 exactly; ours must stray no further than transformers'
    own bfloat16 run of the same checkpoint (within 25%), pick float32's next token about as often, and agree
    with itself when the same tokens go through the KV cache in two pieces."""
    from transformers import AutoModelForCausalLM

    folder, reference = random_checkpoints["llama"]
    ids = token_ids(1, 40)
    with torch.no_grad():
        exact = reference(ids).logits
        theirs = AutoModelForCausalLM.from_pretrained(folder).to(device, torch.bfloat16)(ids.to(device)).logits
    model = workbook.load_model(folder, device=device, dtype="bfloat16")
    ours = model(ids.to(device))
    assert ours.dtype == torch.bfloat16 and ours.device.type == device
    ours_error = (ours.float().cpu() - exact).abs().max().item()
    theirs_error = (theirs.float().cpu() - exact).abs().max().item()
    assert 0 < ours_error <= 1.25 * theirs_error
    agreement = {name: (logits.float().cpu().argmax(-1) == exact.argmax(-1)).float().mean().item()
                 for name, logits in (("ours", ours), ("theirs", theirs))}
    assert agreement["ours"] >= agreement["theirs"] - 0.1  # random weights leave near ties that bfloat16 flips
    cache = model.new_cache(48)
    stepped = torch.cat([model(ids[:, :30].to(device), cache=cache), model(ids[:, 30:].to(device), cache=cache)], dim=1)
    assert (stepped.float() - ours.float()).abs().max().item() <= 2 * theirs_error


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU; the CPU twin is test_logits_match_transformers")
def test_logits_match_transformers_on_cuda(random_checkpoints):
    folder, reference = random_checkpoints["llama"]
    model = workbook.load_model(folder, device="cuda")
    ids = token_ids(1, 40)
    with torch.no_grad():
        expected = reference(ids).logits
    cache = model.new_cache(48)
    assert model(ids, cache=cache).device.type == "cuda"
    assert (model(ids).cpu() - expected).abs().max().item() <= 1e-4
