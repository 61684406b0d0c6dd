"""Lesson 9's views driven from Python: the serving timeline and the KV pool picture."""

import pytest

import workbook
from workbook.server import StepSnapshot
from workbook.widgets.pool_view import PoolCounts, PoolOccupancyView, pool_cells, pool_counts
from workbook.widgets.serving_timeline import STATES, ServingTimelineView, timeline

LONG_A, LONG_B, SHORT = list(range(20, 60)), list(range(60, 90)), list(range(100, 110))


@pytest.fixture(scope="module")
def shipped(one_thread):  # one torch thread: steps this small run fastest that way (see conftest)
    return workbook.load_model("tiny", device="cpu"), workbook.load_tokenizer("tiny")


def snap(step, prefill=None, decode=(), waiting=(), preempted=(), finished=()):
    return StepSnapshot(step, prefill or {}, decode, waiting, preempted, finished, tokens=0, pages_in_use=0,
                        pages_shared=0, seconds=0.0)


def finished_at(cells: list[str]) -> int:
    """The 1-based step in which a timeline row finished."""
    return cells.index("finished") + 1


# ----- the timeline ---------------------------------------------------------------------------


def test_timeline_cells_from_hand_made_snapshots():
    snapshots = [
        snap(1, prefill={0: 16}, waiting=(1,)),
        snap(2, prefill={0: 4, 1: 8}),
        snap(3, decode=(0,)),  # request 1 is in the batch but got no tokens: waiting
        snap(4, decode=(0, 1), finished=(0,)),
        snap(5, preempted=(1,), waiting=(1,), prefill={2: 3}),
        snap(6, prefill={1: 9}, finished=(2,)),
    ]
    assert timeline(snapshots, [0, 1, 2, 3]) == [
        ["prefill", "prefill", "decode", "finished", "", ""],
        ["waiting", "prefill", "waiting", "decode", "preempted", "prefill"],
        ["", "", "", "", "prefill", "finished"],
        ["", "", "", "", "", ""],
    ]
    assert timeline([], [0]) == [[]]


def test_static_batching_takes_more_steps_and_a_late_short_request_waits(shipped):
    trace = [(0, LONG_A, 12), (0, LONG_B, 12), (2, SHORT, 2)]
    continuous = ServingTimelineView(*shipped, trace, mode="continuous")
    static = ServingTimelineView(*shipped, trace, mode="static")
    continuous.run_to_end()
    static.run_to_end()
    c, s = continuous.state, static.state
    assert c.done and s.done and c.finished == s.finished == 3 and not c.error and not s.error
    assert s.steps > c.steps
    assert finished_at(c.cells[2]) < finished_at(s.cells[2])
    # Continuous: the short request starts in the step it arrives, beside the long ones.
    assert c.cells[2][:4] == ["", "", "prefill", "finished"] and c.cells[0][2] == "decode"
    # Static: it waits (held back by the driver) until the first batch has finished, then runs alone.
    first_batch_done = max(finished_at(s.cells[0]), finished_at(s.cells[1]))
    assert set(s.cells[2][2:first_batch_done]) == {"waiting"}
    assert s.cells[2][first_batch_done] == "prefill"
    assert c.tokens == s.tokens and c.mean_batch > s.mean_batch
    assert "Static batching" in static.summary.value and "requests per step" in static.summary.value


def test_a_chunked_prefill_shows_several_prefill_cells_in_a_row(shipped):
    view = ServingTimelineView(*shipped, [(0, list(range(20, 100)), 2)], prefill_chunk=32)
    view.run_to_end()
    assert view.state.cells == [["prefill", "prefill", "prefill", "finished"]]
    assert [s.prefill for s in view.state.snapshots[:3]] == [{0: 32}, {0: 32}, {0: 16}]
    assert 'title="request 0, step 2: prefill (32 prompt tokens)"' in view.picture.value


def test_a_small_pool_shows_a_preempted_cell(shipped):
    # 5 pages: both requests start on 2 and both need a third at row 32, so the newer one is preempted.
    trace = [(0, list(range(30, 60)), 18), (0, list(range(60, 90)), 18)]
    view = ServingTimelineView(*shipped, trace, capacity_tokens=80)
    view.run_to_end()
    first, second = view.state.cells
    assert "preempted" not in first and "preempted" in second
    after = second[second.index("preempted") + 1:]
    assert after[0] == "waiting" and "prefill" in after and after[-1] == "finished"  # recomputed, then done
    assert 'class="wb-cell-preempted"' in view.picture.value


def test_steps_before_the_first_arrival_are_idle_columns(shipped):
    view = ServingTimelineView(*shipped, [(3, SHORT, 2)])
    view.run_to_end()
    assert view.state.cells == [["", "", "", "prefill", "finished"]]
    assert [s.tokens for s in view.state.snapshots] == [0, 0, 0, len(SHORT), 1]


def test_buttons_step_run_to_end_and_reset(shipped):
    view = ServingTimelineView(*shipped, [(0, LONG_A, 3), (1, SHORT, 2)])
    assert view.state.steps == 0 and view.state.cells == []
    view.step_button.click()
    assert view.state.steps == 1 and view.state.cells == [["prefill"], [""]]
    view.run_button.click()
    assert view.state.done and view.step_button.disabled and view.run_button.disabled
    assert view.state.finished == 2 and "The run is over" in view.summary.value
    assert all(words in view.legend.value for _, _, words in STATES.values())
    for state in ("prefill", "decode", "finished"):  # a colour and a symbol in every cell
        colour, symbol, _ = STATES[state]
        assert f"background:{colour};color:" in view.picture.value and f">{symbol}</td>" in view.picture.value
    assert view.step() is None  # nothing left to do
    view.mode_buttons.value = "static"  # switching mode starts again
    assert view.state.mode == "static" and view.state.steps == 0 and not view.step_button.disabled
    view.run_to_end()
    view.reset_button.click()
    assert view.state.mode == "static" and view.state.steps == 0


@pytest.mark.parametrize("trace, settings, message", [
    ([], {}, "trace is empty"),
    ([(0, SHORT, 2)], dict(max_running=0), "max_running must be a whole number"),
    ([(0, SHORT, 2)], dict(mode="batched"), "mode must be one of"),
    ([(-1, SHORT, 2)], {}, "arrival step must be a whole number"),
    ([(0, SHORT, 2)], dict(capacity_tokens=8), "holds no page"),
])
def test_bad_timeline_settings_show_an_error(shipped, trace, settings, message):
    view = ServingTimelineView(*shipped, trace, **settings)
    assert message in view.errors.message and message in view.errors.widget.value
    assert view.step() is None and view.step_button.disabled and view.state.steps == 0


def test_a_refused_request_stops_the_run_with_an_error(shipped):
    # 2 pages of 16: the second request (40 prompt + 2 new rows) cannot fit in the whole pool.
    view = ServingTimelineView(*shipped, [(0, SHORT, 2), (1, LONG_A, 2)], capacity_tokens=32)
    view.run_to_end()
    assert "Request 1 (arriving at step 1) was refused" in view.errors.message
    assert view.state.cells == [["prefill"], [""]] and view.run_button.disabled  # stopped before step 2


# ----- the pool ---------------------------------------------------------------------------------


def test_pool_cells_and_counts_from_hand_made_holders():
    holders = {0: ["cache", 1, 2], 1: ["cache"], 2: [1], 4: [2, 3], 5: ["cache", 3]}
    assert pool_cells(holders, 7) == ["shared", "cache", "request", "free", "shared", "shared", "free"]
    # Without sharing: requests 1 and 2 each copy page 0, page 1 stays cached, 2 for page 4, 1 for page 5.
    assert pool_counts(holders) == PoolCounts(in_use=5, shared=3, without_sharing=2 + 1 + 1 + 2 + 1)
    assert pool_counts({}) == PoolCounts(0, 0, 0)


@pytest.fixture(scope="module")
def system_ids(shipped):
    ids = shipped[1].encode("You are a careful assistant for a small bakery. Answer in one short sentence. " * 4)
    return ids[:64]  # four full pages


def test_four_requests_share_the_system_prompt_pages(shipped, system_ids):
    view = PoolOccupancyView(*shipped, capacity_tokens=1024)
    shared = view.run(system_ids, n_requests=4, suffix_tokens=8, max_new_tokens=2, share=True)
    assert shared is view.state and not view.errors.message
    assert shared.running == 4 and not shared.snapshot.waiting
    # Four system-prompt pages held by the cache and all four requests, then one page of each request's own.
    assert shared.counts == PoolCounts(in_use=4 + 4, shared=4, without_sharing=4 * 5)
    assert sum(len(who) == 5 and "cache" in who for who in shared.holders.values()) == 4
    assert shared.counts.in_use == shared.snapshot.pages_in_use and shared.cells.count("shared") == 4
    page = next(p for p, who in shared.holders.items() if len(who) == 5)  # request 0 warmed the cache
    assert f'title="page {page}: cache, request 1, request 2, request 3, request 4"' in view.picture.value
    assert view.requests_slider.value == 4 and view.share_box.value

    alone = view.run(system_ids, n_requests=4, suffix_tokens=8, max_new_tokens=2, share=False)
    assert alone.running == 4 and alone.counts == PoolCounts(in_use=20, shared=0, without_sharing=20)
    assert alone.counts.in_use > shared.counts.in_use and alone.num_pages == shared.num_pages == 64
    assert "20 of 64 pages in use" in view.summary.value

    view.share_box.value = True
    view.run_button.click()  # the controls rerun with the last prompt
    assert view.state.counts == shared.counts


@pytest.mark.parametrize("args, message", [
    (dict(system_prompt_ids=[]), "system prompt is empty"),
    (dict(n_requests=0), "n_requests must be a whole number"),
    (dict(suffix_tokens=0), "suffix_tokens must be a whole number"),
    (dict(max_new_tokens=2000), "the whole KV pool holds 64"),
])
def test_bad_pool_input_shows_an_error(shipped, system_ids, args, message):
    view = PoolOccupancyView(*shipped, capacity_tokens=1024)
    assert view.run(**{"system_prompt_ids": system_ids, **args}) is None
    assert message in view.errors.message and view.state.error == view.errors.message
    assert view.picture.value == "" and view.summary.value == ""
