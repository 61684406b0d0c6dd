"""The lesson 1-3 views, driven from Python the way a learner drives them with the mouse."""

import re

import pytest
import torch

from workbook.counting import forward_flops
from workbook.widgets.attention_grid import AttentionGrid
from workbook.widgets.decode_stepper import DecodeStepper
from workbook.widgets.kv_rows import KVRowsTable
from workbook.widgets.style import PROVENANCE_COLOURS
from workbook.widgets.tokens import DivergenceView, TokenStrip, divergence_provenance, readable

PROMPT = "You are a careful support assistant."


# ----- TokenStrip -----------------------------------------------------------------------------


def test_token_strip_shows_each_token_with_its_id_and_provenance(small_tokenizer):
    ids = small_tokenizer.encode("Answer  briefly.\nNever invent")
    provenance = ["loaded"] * 3 + ["computed"] * (len(ids) - 4) + ["invalidated"]
    strip = TokenStrip(small_tokenizer, title="prompt")
    strip.show(ids, provenance)
    assert strip.state.ids == ids and strip.state.provenance == provenance
    assert strip.state.texts == small_tokenizer.token_texts(ids)
    page = strip.widget.children[0].value
    assert "prompt" in page and "wb-legend" in page
    assert page.count('class="wb-chip"') == len(ids)
    for word, colour in PROVENANCE_COLOURS.items():
        assert colour in page and f">{word}<" in page  # a colour and a word: colour alone is not enough
    assert "␣" in page and "↵" in page  # the double space and the newline are visible


def test_token_strip_without_provenance_is_neutral(small_tokenizer):
    strip = TokenStrip(small_tokenizer)
    strip.show(small_tokenizer.encode("orders"))
    page = strip.widget.children[0].value
    assert strip.state.provenance is None
    assert "wb-legend" not in page and not any(c in page for c in PROVENANCE_COLOURS.values())


@pytest.mark.parametrize("ids, provenance, message", [
    ([1, 2], ["loaded"], "one per token"),
    ([1, 2], ["loaded", "cached"], "Unknown provenance"),
    ([99999], None, "not in this tokenizer"),
])
def test_token_strip_shows_bad_input_in_its_error_box(small_tokenizer, ids, provenance, message):
    strip = TokenStrip(small_tokenizer)
    strip.show([5, 6])
    strip.show(ids, provenance)
    assert message in strip.errors.message and message in strip.errors.widget.value
    assert strip.state.ids == [5, 6]  # the last good picture stays
    strip.show([7])
    assert strip.errors.message == "" and strip.state.ids == [7]


def test_a_folded_strip_keeps_each_runs_ends_and_where_the_provenance_changes(small_tokenizer):
    ids = small_tokenizer.encode("You are a careful support assistant. " * 6)
    provenance = ["loaded"] * 30 + ["invalidated"] * 5 + ["computed"] * (len(ids) - 35)
    strip = TokenStrip(small_tokenizer, fold=3)
    strip.show(ids, provenance)
    page = strip.widget.children[0].value
    long_runs = [n for n in (30, len(ids) - 35) if n > 7]  # the 5 invalidated tokens are too few to fold
    assert strip.state.hidden == sum(n - 6 for n in long_runs)
    assert page.count('class="wb-chip"') == len(ids) - strip.state.hidden
    assert "… 24 more loaded tokens …" in page and "invalidated tokens" not in page
    shown = [int(i) for i in re.findall(r'class="wb-chip" title="token (\d+):', page)]
    assert shown[:6] == ids[:3] + ids[27:30]  # the loaded run's first 3 chips, then its last 3
    assert shown[6:11] == ids[30:35]  # every invalidated chip: where the hit ends stays in view
    assert shown[-3:] == ids[-3:]

    strip.show_all.value = True  # the learner asks for every token
    assert strip.state.hidden == 0 and strip.widget.children[0].value.count('class="wb-chip"') == len(ids)


def test_a_strip_folds_only_when_asked_and_never_to_nothing(small_tokenizer):
    ids = small_tokenizer.encode("You are a careful support assistant. " * 6)
    plain = TokenStrip(small_tokenizer)
    plain.show(ids, ["loaded"] * len(ids))
    assert plain.state.hidden == 0 and plain.show_all.layout.display == "none"
    with pytest.raises(ValueError, match=r"fold \(tokens kept at each end of a run\) must be a whole number >= 1, not 0"):
        TokenStrip(small_tokenizer, fold=0)
    with pytest.raises(ValueError, match="num_layers must be a whole number >= 1, not True"):
        KVRowsTable(small_tokenizer, True)  # a flag is not a count


def test_readable_marks_whitespace():
    assert readable(" a\tb\n") == "␣a⇥b↵"


# ----- DivergenceView -------------------------------------------------------------------------


def test_divergence_view_marks_everything_after_the_first_difference(small_tokenizer):
    tok = small_tokenizer
    view = DivergenceView(tok, PROMPT, PROMPT)
    assert view.state.divergence is None and view.state.reusable == len(tok.encode(PROMPT))
    assert set(view.strip_b.state.provenance) == {"loaded"}

    view.box_b.value = "You are a careful  support assistant."  # typing one extra space
    split = view.state.divergence
    assert split == next(i for i, (a, b) in enumerate(zip(tok.encode(PROMPT), view.state.ids_b)) if a != b)
    assert view.strip_b.state.provenance == divergence_provenance(view.state.ids_a, view.state.ids_b)
    assert f"First difference at token {split}" in view.summary.value


def test_divergence_provenance_splits_invalidated_from_computed():
    cached = [1, 2, 3, 4]
    assert divergence_provenance(cached, cached) == ["loaded"] * 4  # an ideal token-level cache: all of it
    # after the first difference: invalidated where the cache held a row, computed past its end
    assert divergence_provenance(cached, [1, 2, 9, 4, 5, 6]) == ["loaded"] * 2 + ["invalidated"] * 2 + ["computed"] * 2
    assert divergence_provenance(cached, [1, 2, 3, 4, 5]) == ["loaded"] * 4 + ["computed"]  # a longer prompt


@pytest.mark.parametrize("text_b, message", [("", "need some text"), ("word " * 40, "at most 16")])
def test_divergence_view_refuses_empty_or_long_prompts(small_tokenizer, text_b, message):
    view = DivergenceView(small_tokenizer, PROMPT, PROMPT, max_tokens=16)
    view.box_b.value = text_b
    assert message in view.errors.message


# ----- KVRowsTable ----------------------------------------------------------------------------


def test_kv_rows_table_collapses_and_expands_layers(small_tokenizer):
    ids = small_tokenizer.encode(PROMPT)
    provenance = ["loaded"] * 4 + ["computed"] * (len(ids) - 4)
    table = KVRowsTable(small_tokenizer, num_layers=3)
    table.show(ids, provenance)
    rows = table.state.rows
    assert not table.state.expanded and len(rows) == len(ids)
    assert [r["provenance"] for r in rows] == provenance and [r["id"] for r in rows] == ids
    assert set(rows[0]) == {"position", "token", "id", "K", "V", "provenance"}

    table.expand.value = True
    rows = table.state.rows
    assert table.state.expanded and len(rows) == len(ids)
    assert [k for k in rows[0] if k.startswith("layer")] == ["layer 0", "layer 1", "layer 2"]
    page = table.widget.children[2].value
    assert page.count("<tr>") == len(ids) + 1 and "K2 V2" in page
    assert f"{2 * 3 * len(ids)} vectors" in page and "4 loaded" in page

    table.expand.value = False
    assert "K" in table.state.rows[0] and not table.state.expanded


def test_kv_rows_table_shows_bad_input_in_its_error_box(small_tokenizer):
    table = KVRowsTable(small_tokenizer, num_layers=2)
    table.show([1, 2, 3], ["computed", "loaded"])
    assert "one per token" in table.errors.message and table.state.rows == []


# ----- AttentionGrid --------------------------------------------------------------------------


def model_attention(model, ids):
    steps = []
    logits = model(torch.tensor([ids]), record_attention=steps)
    return [s.weights[0] for s in steps], [s.output[0] for s in steps], logits[0, -1]


def test_attention_grid_draws_the_models_mask_and_weights(small_model, small_tokenizer):
    grid = AttentionGrid(small_model, small_tokenizer, prompt=PROMPT)
    ids = small_tokenizer.encode(PROMPT)
    weights, _, _ = model_attention(small_model, ids)
    mask_map, weight_map = grid.figure.data
    n = len(ids)
    assert [list(row) for row in mask_map.z] == [[int(j <= i) for j in range(n)] for i in range(n)]
    assert torch.allclose(torch.tensor(weight_map.z), weights[0][0])

    grid.layer.value, grid.head.value = 1, 3
    assert (grid.state.layer, grid.state.head) == (1, 3)
    assert torch.allclose(torch.tensor(grid.figure.data[1].z), weights[1][3])


def test_appending_a_token_leaves_every_earlier_row_unchanged(small_model, small_tokenizer):
    grid = AttentionGrid(small_model, small_tokenizer, prompt=PROMPT)
    ids = small_tokenizer.encode(PROMPT)
    _, _, last = model_attention(small_model, ids)
    grid.append_button.click()
    grid.append_button.click()
    s = grid.state
    assert s.appended == 2 and s.ids[: len(ids) + 1] == ids + [int(last.argmax())]
    assert s.max_change_weights < 1e-5 and s.max_change_outputs < 1e-5
    assert len(grid.figure.data[1].z) == len(ids) + 2
    assert grid.figure.layout.shapes[0].y1 == len(ids) + 1.5  # the new row is outlined
    weights, outputs, _ = model_attention(small_model, s.ids)
    assert all(torch.allclose(a, b) for a, b in zip(s.weights, weights))
    assert all(torch.allclose(a, b) for a, b in zip(s.outputs, outputs))


def test_attention_grid_reports_bad_prompts(small_model, small_tokenizer):
    grid = AttentionGrid(small_model, small_tokenizer, prompt="orders", max_tokens=4)
    shown = list(grid.state.ids)
    grid.prompt.value = "   "
    grid.show_button.click()
    assert "empty" in grid.errors.message and grid.state.ids == shown
    grid.prompt.value = PROMPT
    grid.show_button.click()
    assert "at most 4" in grid.errors.message
    for _ in range(4):
        grid.append_button.click()
    assert len(grid.state.ids) == 4 and "at most 4" in grid.errors.message


# ----- DecodeStepper --------------------------------------------------------------------------


def greedy_without_cache(model, ids, steps):
    ids = list(ids)
    for _ in range(steps):
        ids.append(int(model(torch.tensor([ids]))[0, -1].argmax()))
    return ids


def test_decode_stepper_counts_whole_sequence_versus_one_row(small_model, small_tokenizer):
    stepper = DecodeStepper(small_model, small_tokenizer, prompt=PROMPT, max_steps=8)
    n = len(small_tokenizer.encode(PROMPT))
    for _ in range(4):
        stepper.step_button.click()
    s = stepper.state
    assert s.steps == 4
    assert s.rows_without == [n, n + 1, n + 2, n + 3]
    assert s.rows_with == [n, 1, 1, 1]
    cfg = small_model.config
    assert s.flops_without == [forward_flops(cfg, n_new=n + k).total for k in range(4)]
    assert s.flops_with == [forward_flops(cfg, n_new=n).total] + [forward_flops(cfg, 1, n + k).total for k in range(3)]
    assert all(t > 0 for t in s.seconds_without + s.seconds_with)
    assert max(s.max_logit_diff) < 1e-4
    assert s.ids == greedy_without_cache(small_model, s.prompt_ids, 4)
    rows_without, rows_with, flops_without = stepper.figure.data[:3]
    assert rows_without.y == tuple(s.rows_without) and rows_with.y == tuple(s.rows_with)
    assert flops_without.x == (1, 2, 3, 4) and flops_without.y == tuple(s.flops_without)


def test_decode_stepper_stops_at_its_limit_and_resets(small_model, small_tokenizer):
    stepper = DecodeStepper(small_model, small_tokenizer, prompt=PROMPT, max_steps=6)
    stepper.step10_button.click()
    assert stepper.state.steps == 6 and "stops after 6 steps" in stepper.errors.message
    stepper.prompt.value = "orders"
    stepper.reset_button.click()
    assert stepper.state.steps == 0 and stepper.errors.message == ""
    assert stepper.state.prompt_ids == small_tokenizer.encode("orders") and stepper.figure.data[0].y == ()


@pytest.mark.parametrize("prompt, message", [("", "empty"), ("refunds " * 60, "context")])
def test_decode_stepper_reports_bad_prompts(small_model, small_tokenizer, prompt, message):
    stepper = DecodeStepper(small_model, small_tokenizer, prompt="orders", max_steps=8)
    stepper.prompt.value = prompt
    stepper.reset_button.click()
    assert message in stepper.errors.message
    assert stepper.state.prompt_ids == small_tokenizer.encode("orders")  # the old run is kept


def test_views_started_without_a_prompt_ask_for_one(small_model, small_tokenizer):
    grid = AttentionGrid(small_model, small_tokenizer, prompt="")
    grid.append_button.click()
    grid.layer.value = 1
    assert "no prompt yet" in grid.errors.message and grid.state.ids == []
    stepper = DecodeStepper(small_model, small_tokenizer, prompt="", max_steps=4)
    stepper.step_button.click()
    assert "no prompt yet" in stepper.errors.message and stepper.state.steps == 0


def test_a_folded_kv_table_keeps_the_row_where_the_hit_ends(small_tokenizer):
    ids = small_tokenizer.encode("You are a careful support assistant. " * 4)
    provenance = ["loaded"] * 20 + ["computed"] * (len(ids) - 20)
    table = KVRowsTable(small_tokenizer, num_layers=2, fold=2)
    table.show(ids, provenance)
    page = table._table.value
    assert "… 16 more loaded rows …" in page
    drawn = page.count("<tr><td")  # one per token row drawn (the fold rows are <tr class=...>)
    computed_run = len(ids) - 20
    assert drawn == 2 + 2 + (computed_run if computed_run <= 5 else 2 + 2)  # each run's two ends, unless it is short
    assert len(table.state.rows) == len(ids)  # folding changes the drawing, never the table's data

    table.show_all.value = True
    assert table._table.value.count("<tr><td") == len(ids) and "wb-fold" not in table._table.value
