import pytest
import torch

from workbook.attention import causal_attention, causal_attention_steps, causal_mask


def qkv(n_queries, n_keys, heads=4, kv_heads=2, dim=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(1, heads, n_queries, dim, generator=g), torch.randn(1, kv_heads, n_keys, dim, generator=g),
            torch.randn(1, kv_heads, n_keys, dim, generator=g))


def test_mask_lets_each_query_see_itself_and_the_past_only():
    mask = causal_mask(3, 5)  # the last 3 of 5 positions
    assert mask.tolist() == [[True, True, True, False, False],
                             [True, True, True, True, False],
                             [True, True, True, True, True]]
    assert causal_mask(4, 4, sliding_window=2).sum(dim=1).tolist() == [1, 2, 2, 2]


@pytest.mark.parametrize("n_queries,n_keys,window", [(6, 6, None), (1, 9, None), (3, 9, None), (7, 7, 3), (2, 9, 4)])
def test_written_out_and_fast_path_agree(n_queries, n_keys, window):
    q, k, v = qkv(n_queries, n_keys)
    steps = causal_attention_steps(q, k, v, sliding_window=window)
    fast = causal_attention(q, k, v, sliding_window=window)
    assert torch.allclose(steps.output, fast, atol=1e-6)
    assert torch.allclose(steps.weights.sum(-1), torch.ones(1, 4, n_queries))
    assert (steps.weights[..., ~steps.mask] == 0).all()


def test_appending_a_token_leaves_every_earlier_row_unchanged():
    q, k, v = qkv(8, 8)
    before = causal_attention(q[:, :, :7], k[:, :, :7], v[:, :, :7])
    after = causal_attention(q, k, v)
    assert torch.equal(causal_attention_steps(q, k, v).weights[..., :7, 7], torch.zeros(1, 4, 7))
    assert torch.allclose(after[:, :, :7], before, atol=1e-6)


def test_without_the_mask_earlier_rows_would_change():
    """The control: it is the mask, not luck, that keeps earlier rows fixed."""
    q, k, v = qkv(8, 8, heads=2, kv_heads=2)
    full = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    short = torch.nn.functional.scaled_dot_product_attention(q[:, :, :7], k[:, :, :7], v[:, :, :7])
    assert not torch.allclose(full[:, :, :7], short, atol=1e-3)
