"""Quantised K/V: round-trip error bounds, bytes, and exact reuse (a quantised hit equals a quantised cold run)."""

import pytest
import torch

import workbook
from workbook import Engine, PagePool, PrefixCache, Server, WorkbookError
from workbook.kv_quant import KV_BITS, dequantize, quantize

KINDS = list(KV_BITS)


@pytest.fixture(scope="module")
def shipped():
    return workbook.load_model("tiny", device="cpu"), workbook.load_tokenizer("tiny")


@pytest.mark.parametrize("bits", [8, 4, 2])
def test_integer_rows_come_back_within_half_a_step(bits):
    rows = torch.randn(3, 50, 64) * torch.rand(3, 50, 1) * 10
    codes, params = quantize(rows, f"int{bits}")
    back = dequantize(codes, params, torch.float32)
    step = (rows.amax(-1, keepdim=True) - rows.amin(-1, keepdim=True)) / (2 ** bits - 1)
    assert codes.dtype == torch.uint8 and int(codes.max()) <= 2 ** bits - 1
    assert ((back - rows).abs() <= step / 2 + 1e-5).all()
    assert ((back - rows).abs() > step / 4).any()  # it really is rounded to the grid


def test_fp8_rows_come_back_within_its_precision():
    rows = torch.randn(3, 50, 64) * 5
    codes, params = quantize(rows, "fp8")
    back = dequantize(codes, params, torch.float32)
    absmax = rows.abs().amax(-1, keepdim=True)
    assert codes.dtype == torch.float8_e4m3fn
    # three mantissa bits: relative error at most 2**-4 for normal numbers, plus the subnormal spacing
    assert ((back - rows).abs() <= rows.abs() * 2 ** -4 + absmax / 448 * 2 ** -9).all()


def test_a_page_costs_what_its_bits_say(shipped):
    model, _ = shipped
    layers, heads, dim, page = model.config.num_layers, model.config.num_kv_heads, model.config.head_dim, 16
    sizes = {}
    for kind in [None, *KINDS]:
        cache = PrefixCache(PagePool.for_tokens(1024, page, kind))
        cache.pool.bind(model)
        sizes[kind] = cache.pool.bytes_per_page()
    rows = 2 * layers * heads * page  # K and V rows of one head each, in one page
    assert sizes[None] == rows * dim * 4  # float32
    assert sizes["int8"] == rows * (dim + 8) and sizes["fp8"] == rows * (dim + 4)
    assert sizes["int4"] == rows * (dim // 2 + 8) and sizes["int2"] == rows * (dim // 4 + 8)


@pytest.mark.parametrize("kind", KINDS)
def test_a_quantised_hit_equals_a_quantised_cold_run(shipped, kind):
    model, tokenizer = shipped
    prompt = tokenizer.encode("You are a careful assistant for a small bakery. Prices include tax. Bread is baked twice "
                              "a day, and the shop opens at seven. Never promise a delivery time. Where is my order?")
    assert len(prompt) > 41
    cold = Engine(model, tokenizer, PrefixCache(PagePool.for_tokens(2048, 16, kind))).generate(prompt, max_new_tokens=12,
                                                                                 stop_at_eos=False)
    engine = Engine(model, tokenizer, PrefixCache(PagePool.for_tokens(2048, 16, kind)))
    engine.generate(prompt[:40] + [7], max_new_tokens=1)
    hit = engine.generate(prompt, max_new_tokens=12, stop_at_eos=False)
    assert hit.cached_tokens == 32 and cold.cached_tokens == 0
    assert hit.output_ids == cold.output_ids
    assert (hit.first_token_logits - cold.first_token_logits).abs().max().item() <= 1e-4
    stored = engine.prefix_cache.pool.keys
    assert stored.dtype == (torch.float8_e4m3fn if kind == "fp8" else torch.uint8)


def test_fewer_bits_drift_further_from_float(shipped):
    model, tokenizer = shipped
    prompt = tokenizer.encode("The shop opens at seven and closes at six. Bread is baked twice a day. When")
    reference = Engine(model, tokenizer).generate(prompt, max_new_tokens=1).first_token_logits
    drift = {kind: (Engine(model, tokenizer, PrefixCache(PagePool.for_tokens(1024, 16, kind))).generate(prompt, max_new_tokens=1)
                    .first_token_logits - reference).abs().max().item() for kind in ("int8", "int4", "int2")}
    assert 0 < drift["int8"] < drift["int4"] < drift["int2"]


def test_a_batched_server_on_a_quantised_pool_gives_each_request_its_own_quantised_result(shipped):
    model, tokenizer = shipped
    prompts = [tokenizer.encode(f"Question {i}: where is my order number {i * 7}?") for i in range(6)]
    server = Server(model, tokenizer, None, max_running=6, pool_tokens=1024, kv_dtype="int8")
    ids = {server.submit(p, max_new_tokens=8, stop_at_eos=False): p for p in prompts}
    results = server.run_until_done()
    for rid, prompt in ids.items():
        alone = Engine(model, tokenizer, PrefixCache(PagePool.for_tokens(1024, 16, "int8"))).generate(prompt, max_new_tokens=8,
                                                                                        stop_at_eos=False)
        assert results[rid].output_ids == alone.output_ids


@pytest.mark.parametrize("kind", ["int3", "float8", 8])
def test_an_unknown_kv_dtype_is_refused(kind):
    with pytest.raises(WorkbookError, match="kv_dtype"):
        PrefixCache(PagePool.for_tokens(1024, 16, kind))


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU; the cpu case is its twin")])])
def test_every_format_reuses_exactly_on(device):
    model, tokenizer = workbook.load_model("tiny", device=device), workbook.load_tokenizer("tiny")
    prompt = tokenizer.encode("Bread is baked twice a day and the shop opens at seven. " * 3 + "When can I come?")
    for kind in KINDS:
        cold = Engine(model, tokenizer, PrefixCache(PagePool.for_tokens(1024, 16, kind))).generate(prompt, max_new_tokens=8)
        engine = Engine(model, tokenizer, PrefixCache(PagePool.for_tokens(1024, 16, kind)))
        engine.generate(prompt, max_new_tokens=1)
        hit = engine.generate(prompt, max_new_tokens=8)
        assert hit.cached_tokens > 0 and hit.output_ids == cold.output_ids, kind
        assert (hit.first_token_logits - cold.first_token_logits).abs().max().item() <= 1e-4, kind
