"""Lesson 6's step viewer, clicked from Python, and its "check yourself" functions."""

import html

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

import workbook
from workbook.exercises.lesson6 import (OUTPUT_CHANGERS, best_k, check_best_k, check_output_changers,
                                        check_step_outcome, step_outcome)
from workbook.speculative import SpeculativeStep, predicted_speedup, target_generate
from workbook.widgets.speculative_view import ROLES, SpeculativeView, step_roles

PROMPT = "You are a careful support assistant for an online shop."


@pytest.fixture(scope="module")
def small_draft(tmp_path_factory):
    """A one-layer random Llama with the same 320-token vocabulary as `small_model`."""
    torch.manual_seed(1)
    config = LlamaConfig(vocab_size=320, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=96)
    folder = tmp_path_factory.mktemp("lesson6-draft")
    LlamaForCausalLM(config).eval().save_pretrained(folder)
    return workbook.load_model(folder, device="cpu")


@pytest.fixture
def view(small_model, small_draft, small_tokenizer):
    return SpeculativeView(small_model, small_draft, small_tokenizer, PROMPT, k=3, max_new_tokens=16)


def target_tokens(view):
    return target_generate(view.target, view.state.prompt_ids, view.state.max_new_tokens).output_ids


# ----- the view -------------------------------------------------------------------------------


def test_view_shows_a_real_greedy_trace_that_matches_the_target(view):
    s = view.state
    assert s.result is not None and s.step == 0 and s.n_steps == len(s.result.speculation.steps) >= 1
    assert s.result.output_ids == target_tokens(view)
    assert [t for step in s.result.speculation.steps for t in step.new_tokens] == s.result.output_ids
    assert "tokens per target pass" in view.stats.value and "Acceptance rate" in view.stats.value
    assert view.errors.message == ""


def test_next_and_previous_walk_the_trace_without_generating(view):
    result = view.state.result
    assert view.previous_button.disabled
    for i in range(1, view.state.n_steps):
        view.next_button.click()
        assert view.state.step == i and view.state.result is result  # the same trace, only redrawn
        assert f"step <b>{i + 1}</b> of {view.state.n_steps}" in view.step_label.value
    assert view.next_button.disabled
    view.next_step()  # past the end: stays on the last step
    assert view.state.step == view.state.n_steps - 1
    view.previous_button.click()
    assert view.state.step == max(view.state.n_steps - 2, 0)
    view.go_to(-5)
    assert view.state.step == 0


def test_each_step_shows_its_proposals_roles_target_token_and_caches(view):
    for i, step in enumerate(view.state.result.speculation.steps):
        view.go_to(i)
        page = view.picture.value
        roles = step_roles(step)
        for role in set(roles):
            assert f">{role}<" in page and page.count(f">{role}<") == roles.count(role)
            assert ROLES[role] in page  # a colour and a word
        own = "plain step" if not step.proposed else "bonus ★" if step.bonus else "correction"
        assert f">{own}<" in page
        assert (f"<td>target</td><td>{step.target_rows_before}</td><td>{step.target_rows_after}</td>"
                f"<td>{step.target_rows_before - step.target_rows_after}</td>") in page
        assert f"<td>draft</td><td>{step.draft_rows_before}</td>" in page


def test_text_before_a_step_is_the_prompt_plus_earlier_steps(view):
    s = view.state
    last = s.n_steps - 1
    assert s.text_before(0) == s.prompt_ids
    assert s.text_before(last) + s.result.speculation.steps[last].new_tokens == s.prompt_ids + s.result.output_ids


def test_k_slider_runs_again_and_greedy_output_stays_the_target_s(view):
    view.k_slider.value = 1
    assert view.state.k == 1 and all(step.k <= 1 for step in view.state.result.speculation.steps)
    assert view.state.result.output_ids == target_tokens(view)
    view.k_slider.value = 5
    assert view.state.k == 5 and max(step.k for step in view.state.result.speculation.steps) == 5
    assert view.state.result.output_ids == target_tokens(view)


def test_temperature_slider_samples_a_full_valid_output(view):
    view.temperature_slider.value = 0.8
    r = view.state.result
    assert view.state.temperature == pytest.approx(0.8) and view.errors.message == ""
    assert len(r.output_ids) == view.state.max_new_tokens and all(0 <= t < 320 for t in r.output_ids)
    assert [t for step in r.speculation.steps for t in step.new_tokens] == r.output_ids


def test_prompt_lookup_has_no_draft_cache(view):
    view.prompt_box.value = "the shop the shop the shop the shop"
    view.drafter_buttons.value = "prompt lookup"
    assert view.state.drafter == "prompt lookup"
    assert all(step.draft_rows_before is None for step in view.state.result.speculation.steps)
    assert "<td>draft</td>" not in view.picture.value and "no draft model" in view.stats.value
    assert view.state.result.output_ids == target_tokens(view)


def test_view_without_a_draft_model_offers_prompt_lookup_only(small_model, small_tokenizer):
    view = SpeculativeView(small_model, None, small_tokenizer, PROMPT, max_new_tokens=8)
    assert view.drafter_buttons.options == ("prompt lookup",) and view.state.result is not None
    view.run(drafter="draft model")
    assert "no draft model" in view.errors.message


@pytest.mark.parametrize("change, message", [
    (dict(prompt="   "), "prompt is empty"),
    (dict(prompt="word " * 200), "at most 64"),
    (dict(k=0), "k must be a whole number >= 1"),
    (dict(temperature=-1.0), "emperature"),
])
def test_bad_input_shows_in_the_error_box_and_keeps_the_trace(small_model, small_draft, small_tokenizer, change, message):
    view = SpeculativeView(small_model, small_draft, small_tokenizer, PROMPT, max_new_tokens=8, max_prompt_tokens=64)
    view.next_step()
    before = view.state
    view.run(**change)
    assert message in view.errors.message and html.escape(message) in view.errors.widget.value
    assert view.state is before and view.state.step == min(1, before.n_steps - 1)
    view.run(prompt=PROMPT)
    assert view.errors.message == "" and view.state.step == 0


def test_step_roles_accept_then_reject_then_discard():
    def step(accepted):
        n = len(accepted)
        return SpeculativeStep(n, list(range(n)), accepted, 9, 0, 0, None, None)

    assert step_roles(step([True, True, False, False])) == ["accepted ✓", "accepted ✓", "rejected ✗", "discarded"]
    assert step_roles(step([True, True])) == ["accepted ✓", "accepted ✓"]
    assert step_roles(step([False])) == ["rejected ✗"]
    assert step_roles(step([])) == []


# ----- check yourself -------------------------------------------------------------------------


def test_step_outcome_matches_a_real_rollback(view):
    for step in view.state.result.speculation.steps:
        added, dropped = step_outcome(len(step.proposed), step.n_accepted)
        assert added == len(step.new_tokens)
        assert dropped == step.target_rows_before - step.target_rows_after


@pytest.mark.parametrize("answer, correct", [(None, None), ((3, 4), True), ([3.0, 4], True), ((4, 3), False),
                                             ((3,), False), ("3, 4", False), ((3, 4.5), False)])
def test_check_step_outcome(answer, correct):
    result = check_step_outcome(answer)
    assert result.correct is correct and result.message


def test_best_k_is_the_argmax_of_the_formula():
    k = best_k(0.6, 0.2)
    assert k == 2 and all(predicted_speedup(0.6, k, 0.2) >= predicted_speedup(0.6, j, 0.2) for j in range(1, 11))
    assert best_k(0.95, 0.01) > 5  # a good, cheap draft earns long drafts


@pytest.mark.parametrize("answer, correct", [(None, None), (2, True), (2.0, True), (3, False), (0, False),
                                             ("two", False), (True, False)])
def test_check_best_k(answer, correct):
    result = check_best_k(answer)
    assert result.correct is correct and result.message


@pytest.mark.parametrize("answer, correct", [(None, None), ({"d"}, True), ("d", True), (["D "], True),
                                             ({"a", "d"}, False), (set(), False), ({"z"}, False),
                                             (4, False)])
def test_check_output_changers(answer, correct):
    result = check_output_changers(answer)
    assert result.correct is correct and result.message
    assert ("not an option" in result.message) == (answer == {"z"})


def test_output_changers_name_exactly_one_change():
    assert [key for key, (_, changes, _) in OUTPUT_CHANGERS.items() if changes] == ["d"]
