import pytest
import torch

from workbook import ContextLengthError, KVCache, WorkbookError


def make_cache(capacity=8):
    return KVCache(num_layers=2, num_kv_heads=2, head_dim=4, max_tokens=capacity)


def write_rows(cache, n, value):
    for layer in range(cache.num_layers):
        cache.write(layer, torch.full((1, 2, n, 4), value), torch.full((1, 2, n, 4), -value))
    cache.commit(n)


def test_rows_are_only_visible_once_every_layer_has_committed():
    cache = make_cache()
    cache.write(0, torch.ones(1, 2, 3, 4), torch.ones(1, 2, 3, 4))
    assert cache.length == 0 and cache.rows(0)[0].shape[2] == 0
    cache.write(1, torch.ones(1, 2, 3, 4), torch.ones(1, 2, 3, 4))
    cache.commit(3)
    assert cache.length == 3 and cache.last_written == range(0, 3)


def test_crop_rolls_back_rows_and_provenance():
    cache = make_cache()
    write_rows(cache, 3, 1.0)
    cache.load([torch.full((1, 2, 2, 4), 2.0)] * 2, [torch.full((1, 2, 2, 4), 2.0)] * 2)
    assert cache.provenance == ["computed"] * 3 + ["loaded"] * 2
    cache.crop(4)
    assert cache.length == 4 and cache.provenance == ["computed"] * 3 + ["loaded"]
    write_rows(cache, 1, 3.0)  # the rolled-back row is overwritten, not appended after it
    assert cache.rows(0)[0][0, 0, :, 0].tolist() == [1.0, 1.0, 1.0, 2.0, 3.0]
    with pytest.raises(WorkbookError, match="crop"):
        cache.crop(6)


def test_room_is_checked_before_anything_is_written():
    cache = make_cache(capacity=4)
    write_rows(cache, 3, 1.0)
    with pytest.raises(ContextLengthError):
        cache.check_room(2)
    with pytest.raises(ContextLengthError):
        cache.load([torch.zeros(1, 2, 2, 4)] * 2, [torch.zeros(1, 2, 2, 4)] * 2)
    assert cache.length == 3 and cache.provenance == ["computed"] * 3


def test_bytes_per_token_counts_keys_and_values_of_every_layer():
    assert make_cache().bytes_per_token() == 2 * 2 * 2 * 4 * 4  # K and V, 2 layers, 2 heads, dim 4, float32
