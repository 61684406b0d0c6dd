"""`make check`: the room check passes on a working checkout and names each broken piece with its fix."""

import shutil
import stat
import sys

import pytest

from workbook import room_check
from workbook.paths import MODELS_DIR
from workbook.room_check import REBUILD, RESTORE, STEPS, check


def steps(*names):
    return [s for s in STEPS if s.name in names]


@pytest.mark.slow
def test_the_check_runs_every_lesson_and_ends_ready_on_this_checkout():
    lines = []
    outcomes = check(out=lines.append)
    assert [o.name for o in outcomes if o.name.startswith("lesson")] == [f"lesson {n:02}" for n in range(1, 13)]
    assert all(o.ok for o in outcomes), [o.error for o in outcomes if not o.ok]
    assert lines[-1] == "ready"
    assert len(lines) == len(STEPS) + 2 and all("ok" in line for line in lines[:len(STEPS)])
    hits = [o for o in outcomes if o.name.startswith("lesson") and o.name not in ("lesson 11", "lesson 12")]
    assert all("prompt tokens loaded on the second request" in o.note for o in hits)


def test_a_missing_model_file_is_named_with_its_fix(tmp_path, monkeypatch):
    broken = tmp_path / "tiny-draft"
    shutil.copytree(MODELS_DIR / "tiny-draft", broken)
    (broken / "model.safetensors").unlink()
    monkeypatch.setenv("WORKBOOK_DRAFT_MODEL", str(broken))
    lines = []
    [outcome] = check(steps("lesson 06"), out=lines.append)
    assert not outcome.ok and "safetensors" in outcome.error and outcome.fix == RESTORE
    assert lines[0].startswith("[ 1/1] FAIL lesson 06")
    assert lines[-1].startswith("not ready: lesson 06 failed (UnsupportedModelError: ")
    assert str(broken) in lines[-1] and lines[-1].endswith(RESTORE)


def test_an_uninstalled_real_model_asks_for_make_setup(monkeypatch):
    import workbook.gguf_loader as loader

    monkeypatch.setitem(loader.GGUF_MODELS, "smollm2-135m-instruct", ("no-such-distribution-xyz", "x/model.gguf"))
    room_check.model.cache_clear(), room_check.tokenizer.cache_clear()  # an earlier test's loaded model is forgotten
    [outcome] = check(steps("real model"), out=[].append)
    assert not outcome.ok and "not installed" in outcome.error and "make setup" in outcome.fix


def test_a_missing_package_asks_for_a_rebuilt_environment(monkeypatch):
    monkeypatch.setitem(sys.modules, "plotly", None)  # what an interrupted install leaves: the import fails
    lines = []
    check(steps("imports", "lesson 11"), out=lines.append)
    assert lines[-1].startswith("not ready: imports failed (ModuleNotFoundError: ") and "plotly" in lines[-1]
    assert lines[-1].endswith(REBUILD) and "lesson 11" not in lines[-1]  # each failure named, and only those


def fake_browser(folder, name="chromium"):
    path = folder / name
    path.write_text("#!/bin/sh\nexit 1\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_chromium_is_checked_only_where_it_is_installed(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # a folder with no browser in it
    [outcome] = check(steps("chromium"), out=lambda line: None)
    assert outcome.ok and "not installed" in outcome.note


def test_a_chromium_that_cannot_start_is_named(tmp_path, monkeypatch):
    pytest.importorskip("playwright.sync_api")
    fake_browser(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    lines = []
    [outcome] = check(steps("chromium"), out=lines.append)
    assert not outcome.ok and lines[-1].startswith("not ready: chromium failed (")
    assert lines[-1].endswith(room_check.CHROMIUM_FIX)
