import pytest
import torch

from workbook.sampling import make_generator, next_token_probs, sample


def test_temperature_zero_is_the_argmax():
    logits = torch.tensor([0.1, 2.0, -1.0, 1.9])
    assert next_token_probs(logits).tolist() == [0.0, 1.0, 0.0, 0.0]


def test_top_p_keeps_the_smallest_set_reaching_p():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    probs = next_token_probs(logits, temperature=1.0, top_p=0.75)
    assert torch.allclose(probs, torch.tensor([0.625, 0.375, 0.0, 0.0]))
    assert torch.allclose(next_token_probs(logits, 1.0, 0.1), torch.tensor([1.0, 0.0, 0.0, 0.0]))


def test_seeded_sampling_repeats():
    probs = next_token_probs(torch.randn(50), temperature=1.0)
    draws = [sample(probs, make_generator(7)) for _ in range(3)]
    assert len(set(draws)) == 1


@pytest.mark.parametrize("temperature,top_p", [(-0.1, 1.0), (1.0, 0.0), (1.0, 1.5), (float("nan"), 1.0)])
def test_impossible_settings_are_refused(temperature, top_p):
    with pytest.raises(ValueError):
        next_token_probs(torch.zeros(3), temperature, top_p)
