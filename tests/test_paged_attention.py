"""Reading pages in place (FlexAttention with a block mask from the page tables) against the reference gather,
and the compiled step against the eager one: the same attention, the same tokens."""

import random
import warnings

import pytest
import torch

import workbook
from workbook import Engine, PagePool, PrefixCache, Server, WorkbookError
from workbook.paged_attention import (BatchSlice, PagedBatch, flex_paged_attention, page_block_mask, paged_attention,
                                      paged_attention_by_page)

HEADS, KV_HEADS, DIM = 6, 2, 16


class Shape:
    """What `PagePool.bind` reads from a model: a K/V shape, a device and a dtype."""

    class config:
        num_layers, num_kv_heads, head_dim = 1, KV_HEADS, DIM

    device, dtype = torch.device("cpu"), torch.float32


def filled_pool(page_size: int, num_pages: int) -> PagePool:
    pool = PagePool(page_size, num_pages)
    pool.bind(Shape)
    generator = torch.Generator().manual_seed(0)
    pool.keys.copy_(torch.randn(pool.keys.shape, generator=generator))
    pool.values.copy_(torch.randn(pool.values.shape, generator=generator))
    return pool


def layouts(pool: PagePool) -> dict[str, list[BatchSlice]]:
    """Steps the server makes: a cold prompt, a hit's suffix, decodes beside a chunk, two requests on shared pages,
    and a prompt longer than one query block (128)."""
    size = pool.page_size
    a, b, c = pool.allocate(6), pool.allocate(5), pool.allocate(12)
    shared = a[:3] + pool.allocate(2)  # a second request on the first three pages of `a`, as a prefix hit lists them
    return {
        "cold prompt": [BatchSlice(a, 0, list(range(5 * size + 3)))],
        "hit: suffix after cached pages": [BatchSlice(a, 3 * size, list(range(2 * size + 1)))],
        "decodes beside a chunk": [BatchSlice(a, 4 * size + 2, [7]), BatchSlice(b, 2 * size, list(range(size + 5))),
                                   BatchSlice(c, 9 * size + 1, [3])],
        "two requests on shared pages": [BatchSlice(a, 5 * size, [1, 2]), BatchSlice(shared, 3 * size, [4, 5, 6])],
        "longer than a query block (at 16 a page)": [BatchSlice(c, size, list(range(10 * size + 3)))],
    }


def by_group(read, q: torch.Tensor, pool: PagePool, batch: PagedBatch) -> torch.Tensor:
    out = torch.empty_like(q)
    for group in batch.groups:
        out[0, :, group.tokens] = read(q, pool, 0, group)
    return out


def eager_flex(q, pool, mask):
    with warnings.catch_warnings():  # FlexAttention warns that eager mode is slow; here it is the point
        warnings.simplefilter("ignore", UserWarning)
        return flex_paged_attention(q, pool, 0, mask, compiled=False)


@pytest.mark.parametrize("window", [None, 20])
@pytest.mark.parametrize("page_size", [16, 4])
def test_whole_pages_and_flex_attention_over_the_pool_equal_the_gather(page_size, window):
    pool = filled_pool(page_size, 64)
    for name, slices in layouts(pool).items():
        batch = PagedBatch(pool, slices, window)
        q = torch.randn(1, HEADS, len(batch.positions), DIM, generator=torch.Generator().manual_seed(1))
        expected = by_group(paged_attention, q, pool, batch)
        assert torch.allclose(by_group(paged_attention_by_page, q, pool, batch), expected, atol=1e-5), name
        mask = page_block_mask(slices, batch.positions, pool, window)
        assert torch.allclose(eager_flex(q, pool, mask), expected, atol=1e-5), name


@pytest.mark.parametrize("window", [None, 20])
def test_the_block_mask_lists_each_seen_page_once_and_full_pages_are_seen_whole(window):
    """The compiled kernel visits only the listed pages and skips the mask on full ones, so both lists must be right."""
    pool = filled_pool(16, 64)
    size = pool.page_size
    for name, slices in layouts(pool).items():
        positions = PagedBatch(pool, slices, window).positions
        mask = page_block_mask(slices, positions, pool, window)
        n, slots = len(positions), pool.num_pages * size
        seen = mask.mask_mod(0, 0, torch.arange(n)[:, None], torch.arange(slots)[None, :])  # [queries, slots]
        block = mask.BLOCK_SIZE[0]
        for j in range(-(-n // block)):
            rows = seen[j * block:(j + 1) * block]
            partial = mask.kv_indices[0, 0, j, :mask.kv_num_blocks[0, 0, j]].tolist()
            full = mask.full_kv_indices[0, 0, j, :mask.full_kv_num_blocks[0, 0, j]].tolist()
            assert len(set(partial + full)) == len(partial + full), name
            pages_seen = set((rows.any(0).nonzero().flatten() // size).tolist())
            assert pages_seen <= set(partial + full), name
            for page in full:
                assert rows[:, page * size:(page + 1) * size].all(), name


def test_the_queries_are_padded_to_few_shapes():
    """A compiled kernel compiles again for every new shape: steps of 1 to 16 queries (decodes) share one, larger
    steps a power of two up to one query block, then whole blocks; the padding sees no key."""
    pool = filled_pool(16, 64)
    table = pool.allocate(12)
    padded = {}
    for n in (1, 3, 16, 17, 100, 128, 129):
        slices = [BatchSlice(table, 0, list(range(n)))]
        mask = page_block_mask(slices, PagedBatch(pool, slices).positions, pool)
        padded[n] = mask.seq_lengths[0]
        slots = torch.arange(pool.num_pages * pool.page_size)
        assert not mask.mask_mod(0, 0, torch.arange(n, padded[n])[:, None], slots[None, :]).any()
    assert padded == {1: 16, 3: 16, 16: 16, 17: 32, 100: 128, 128: 128, 129: 256}


@pytest.mark.parametrize("kind", ["pages", "flex"])
def test_unknown_settings_and_a_quantised_pool_read_as_stored_are_refused(kind):
    model, tokenizer = workbook.load_model("tiny", device="cpu"), workbook.load_tokenizer("tiny")
    with pytest.raises(WorkbookError, match="attention must be one of"):
        model.configure_steps(attention="fast")
    with pytest.raises(WorkbookError, match="compiled must be True or False"):
        model.configure_steps(compiled="yes")
    assert (model.attention, model.compiled) == ("gather", False)
    server = Server(model.configure_steps(attention=kind), tokenizer, pool_tokens=256, kv_dtype="int8")
    server.submit([5, 6, 7], max_new_tokens=2)
    before = server.pool.keys.clone()
    with pytest.raises(WorkbookError, match="quantised pool"):
        server.step()
    assert torch.equal(server.pool.keys, before)  # refused before any layer wrote a row


def mixed_workload(tokenizer) -> list[tuple[list[int], int]]:
    """A shared system prompt (hits after the first), two cold prompts of other lengths, one short one."""
    system = tokenizer.encode("You are a careful assistant for a small bakery. Prices include tax. " * 6)
    rng = random.Random(5)
    return ([(system + tokenizer.encode(f" Question {i}: when do you open?"), 8) for i in range(3)]
            + [([rng.randrange(6, 4096) for _ in range(n)], 6) for n in (70, 200)] + [([9, 10], 5)])


def run_workload(model, tokenizer):
    """Greedy results of the mixed workload through a server with a prefix cache, chunked prefill and 4 at once."""
    server = Server(model, tokenizer, PrefixCache(PagePool.for_tokens(2048, 16)), max_running=4, prefill_chunk=64)
    requests = mixed_workload(tokenizer)
    server.submit(requests[0][0], max_new_tokens=1)
    server.run_until_done()  # writes the system prompt, so the next requests hit it
    ids = [server.submit(prompt, max_new_tokens=n, stop_at_eos=False) for prompt, n in requests]
    results = server.run_until_done()
    return [results[i] for i in ids]


@pytest.mark.slow  # compiles: about 5 minutes on a busy 2-core machine, under a minute once torch's cache is warm
@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU; the cpu case is its twin")])])
def test_flex_and_compiled_steps_give_the_references_tokens(device):
    """Hits, cold prompts, mixed lengths and chunked prefill: identical greedy tokens, logits within 1e-4."""
    model, tokenizer = workbook.load_model("tiny", device=device), workbook.load_tokenizer("tiny")
    expected = run_workload(model, tokenizer)
    assert sum(r.usage.cache_read_tokens for r in expected) > 0
    for attention, compiled in (("pages", False), ("flex", False), ("gather", True), ("flex", True)):
        got = run_workload(model.configure_steps(attention=attention, compiled=compiled), tokenizer)
        for a, b in zip(expected, got):
            assert a.output_ids == b.output_ids, (attention, compiled)
            assert (a.first_token_logits - b.first_token_logits).abs().max().item() <= 1e-4, (attention, compiled)
    model.configure_steps()


def test_engine_requests_follow_the_models_setting():
    """`Engine` runs on the server's paged path, so the model's setting reaches it: whole pages give the same tokens."""
    model, tokenizer = workbook.load_model("tiny", device="cpu"), workbook.load_tokenizer("tiny")
    prompt = tokenizer.encode("The shop opens at seven and closes at six. " * 8)
    expected = Engine(model, tokenizer).generate(prompt, max_new_tokens=6)
    got = Engine(model.configure_steps(attention="pages"), tokenizer).generate(prompt, max_new_tokens=6)
    assert got.output_ids == expected.output_ids
    assert (got.first_token_logits - expected.first_token_logits).abs().max().item() <= 1e-4
