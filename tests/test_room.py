"""The facilitator's view of the room, end to end: the collector (`python -m workbook.room serve`) on a free loopback
port, a learner's real check-yourself calls sending their records to it, the records read back from its JSON and from
its SQLite file after a restart, the live grid read back from headless Chromium, bad records refused with nothing
stored, and a check that answers as usual when the collector is unreachable. Only 127.0.0.1 is ever reached."""

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from test_browser import CHROMIUM, CHROMIUM_ARGS  # the browser check's own Chromium, found the same way
from workbook.exercises import lesson4
from workbook.fleet.processes import free_port
from workbook.exercises.verdict import reset_tries
from workbook.prefix_cache import loadable_tokens
from workbook.pricing import get_sheet
from workbook.room import client, join, leave
from workbook.room.__main__ import main
from workbook.room.catalogue import exercises
from workbook.room.grid import STUCK_AFTER, grid
from workbook.room.page import STATE_LOOK
from workbook.room.record import MAX_BODY_BYTES, Record

REPO = Path(__file__).resolve().parent.parent
FIELDS = {"seat", "lesson", "exercise", "correct", "tries", "time"}
LOADABLE = loadable_tokens(lesson4.SAME_PROMPT_TOKENS, lesson4.SAME_PROMPT_TOKENS, lesson4.PAGE_SIZE)
PENALTY = lesson4.break_penalty_usd(get_sheet(lesson4.BREAK_SHEET))


class Collector:
    """`python -m workbook.room serve` in a subprocess on a free loopback port, over one SQLite file."""

    def __init__(self, folder: Path):
        self.folder, self.db, self.log = folder, folder / "room.sqlite3", folder / "room.log"
        self.process: subprocess.Popen | None = None
        self.url = ""

    def start(self, seconds: float = 120) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        with open(self.log, "a") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "workbook.room", "serve", "--port", str(port), "--db", str(self.db)],
                cwd=self.folder, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the collector exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                self.get("/grid.json")
                return
            except OSError:
                time.sleep(0.3)
        pytest.fail(f"the collector did not answer within {seconds} s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def get(self, path: str):
        with urllib.request.urlopen(self.url + path, timeout=10) as answer:
            return json.load(answer)

    def post(self, body: bytes) -> tuple[int, dict]:
        request = urllib.request.Request(self.url + "/records", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status, json.load(answer)
        except urllib.error.HTTPError as error:
            return error.code, json.load(error)

    def records_of(self, *seats: str) -> list[dict]:
        """The records these seats sent, oldest first, from the JSON endpoint."""
        return [r for r in self.get("/records") if r["seat"] in seats]

    def rows_in_sqlite(self, *seats: str) -> list[dict]:
        """The records these seats sent (every seat's, if none is named), read from the SQLite file itself."""
        with sqlite3.connect(self.db) as db:
            rows = db.execute("SELECT seat, lesson, exercise, correct, tries, time FROM records ORDER BY id").fetchall()
        return [dict(zip(("seat", "lesson", "exercise", "correct", "tries", "time"), row), correct=bool(row[3]))
                for row in rows if not seats or row[0] in seats]


def _started(folder: Path):
    room = Collector(folder)
    room.start()
    try:
        yield room
    finally:
        room.stop()


@pytest.fixture(scope="module")
def shared_room(tmp_path_factory):
    """One collector for the tests that look only at their own seats' records (each start costs seconds)."""
    yield from _started(tmp_path_factory.mktemp("room"))


@pytest.fixture
def patient(monkeypatch):
    """These tests are about what arrives, in order: on a busy test machine a record may take longer than the half
    second a learner's check waits (test_an_unreachable_collector... keeps that wait)."""
    monkeypatch.setattr(client, "WAIT_SECONDS", 60)


@pytest.fixture
def collector(shared_room, patient):
    return shared_room


@pytest.fixture
def empty_room(tmp_path, patient):
    """A collector of its own, for a test that reads the whole room."""
    yield from _started(tmp_path)


@pytest.fixture(autouse=True)
def no_room_yet(monkeypatch):
    """Each test starts as a fresh kernel would: no room joined, none in the environment, no try counted."""
    monkeypatch.delenv(client.ROOM_VARIABLE, raising=False)
    monkeypatch.delenv(client.SEAT_VARIABLE, raising=False)
    monkeypatch.setattr(client, "_joined", None)
    monkeypatch.setattr(client, "_noticed", False)
    reset_tries()
    yield
    reset_tries()


def _learner(url: str, seat: str) -> None:
    """Another learner's kernel: their own tries, joined to the room under their seat."""
    reset_tries()
    join(url, seat)


def test_a_learners_checks_reach_the_room_and_a_restart_loses_none(collector, monkeypatch, capsys):
    monkeypatch.setenv(client.ROOM_VARIABLE, collector.url)
    monkeypatch.setenv(client.SEAT_VARIABLE, "Ada")
    verdicts = [lesson4.check_loadable_tokens(LOADABLE + 16), lesson4.check_loadable_tokens(LOADABLE - 16),
                lesson4.check_loadable_tokens(LOADABLE), lesson4.check_break_penalty(2 * PENALTY),
                lesson4.check_break_penalty(3 * PENALTY), lesson4.check_loadable_tokens(None),
                lesson4.check_loadable_tokens("abc")]
    assert [v.correct for v in verdicts] == [False, False, True, False, False, None, False]
    assert capsys.readouterr().out == ""  # the room took every answer: no notice

    sent = collector.records_of("Ada")
    # Not answered yet (None) and an answer of the wrong shape are not tries, so they are not sent.
    assert [(r["seat"], r["lesson"], r["exercise"], r["correct"], r["tries"]) for r in sent] == [
        ("Ada", 4, "check_loadable_tokens", False, 1), ("Ada", 4, "check_loadable_tokens", False, 2),
        ("Ada", 4, "check_loadable_tokens", True, 3), ("Ada", 4, "check_break_penalty", False, 1),
        ("Ada", 4, "check_break_penalty", False, 2)]
    assert all(set(r) == FIELDS for r in sent)
    assert [r["time"] for r in sent] == sorted(r["time"] for r in sent) and abs(sent[-1]["time"] - time.time()) < 600

    room = collector.get("/grid.json")
    assert {(c["exercise"], c["state"]) for c in room["cells"] if c["seat"] == "Ada"} == {
        ("check_loadable_tokens", "right"), ("check_break_penalty", "stuck"), ("check_prompt_order", "not tried")}

    collector.stop()
    assert collector.rows_in_sqlite("Ada") == sent
    collector.start()
    assert collector.records_of("Ada") == sent
    assert collector.get("/grid.json") == room


def test_join_names_the_seat_leave_stops_and_no_room_sends_nothing(collector, capsys):
    lesson4.check_loadable_tokens(LOADABLE)  # no room yet
    assert client.room() is None
    join(collector.url + "/", "  Bo  ")
    assert client.room() == (collector.url, "Bo")
    lesson4.check_loadable_tokens(LOADABLE)
    leave()
    lesson4.check_loadable_tokens(LOADABLE)
    assert [(r["seat"], r["exercise"], r["correct"]) for r in collector.records_of("Bo", client.anonymous_seat())] == [
        ("Bo", "check_loadable_tokens", True)]
    with pytest.raises(ValueError, match="printable"):
        join(collector.url, "two\nlines")
    with pytest.raises(ValueError, match="http://host:port"):
        join("127.0.0.1:8765", "Bo")
    assert client.room() is None and capsys.readouterr().out == ""


def test_a_room_set_without_a_seat_sends_one_that_is_the_same_every_time_and_names_no_one(collector, monkeypatch):
    monkeypatch.setenv(client.ROOM_VARIABLE, collector.url)
    lesson4.check_loadable_tokens(LOADABLE)
    (record,) = collector.records_of(client.anonymous_seat())
    assert record["seat"] == client.anonymous_seat() and record["seat"].startswith("seat-")
    import getpass
    assert getpass.getuser() not in record["seat"] and socket.gethostname() not in record["seat"]


@pytest.mark.slow
def test_a_notebooks_check_cells_in_a_real_kernel_report_to_the_room(collector, monkeypatch, tmp_path):
    """The room set in the environment the kernel starts from, as a learner's `make lab` would have it."""
    nbformat = pytest.importorskip("nbformat")
    from nbclient import NotebookClient

    monkeypatch.setenv(client.ROOM_VARIABLE, collector.url)
    monkeypatch.setenv(client.SEAT_VARIABLE, "Kernel seat")
    cells = ["from workbook.exercises.lesson4 import check_loadable_tokens\n"
             "from workbook.room import client\n"
             "client.WAIT_SECONDS = 60  # a busy test machine; a refused connection still fails at once",
             f"check_loadable_tokens({LOADABLE + 16})",
             f"check_loadable_tokens({LOADABLE})",
             # The collector gone (an address nobody listens on): the check still answers, with the notice once.
             f"import os; os.environ['{client.ROOM_VARIABLE}'] = 'http://127.0.0.1:{free_port()}'",
             f"check_loadable_tokens({LOADABLE})",
             f"check_loadable_tokens({LOADABLE})"]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code) for code in cells])
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()

    def shown(cell) -> str:
        return "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in cell.outputs)

    assert shown(notebook.cells[1]).startswith("❌ Not quite.") and shown(notebook.cells[2]).startswith("✅ Right.")
    assert [(r["exercise"], r["correct"], r["tries"]) for r in collector.records_of("Kernel seat")] == [
        ("check_loadable_tokens", False, 1), ("check_loadable_tokens", True, 2)]
    notice, verdict = shown(notebook.cells[4]).splitlines()[0], shown(notebook.cells[4]).splitlines()[-1]
    assert "did not take this answer" in notice and verdict.startswith("✅ Right.")
    assert shown(notebook.cells[5]).startswith("✅ Right.") and "did not take" not in shown(notebook.cells[5])


GOOD = {"seat": "Good record", "lesson": 4, "exercise": "check_loadable_tokens", "correct": True, "tries": 1, "time": 1.8e9}
BAD = {
    "a field missing": {k: v for k, v in GOOD.items() if k != "tries"},
    "a field more than the six": {**GOOD, "answer": LOADABLE},
    "tries as text": {**GOOD, "tries": "1"},
    "tries with a fraction": {**GOOD, "tries": 1.5},
    "no tries": {**GOOD, "tries": 0},
    "correct as a number": {**GOOD, "correct": 1},
    "the lesson as text": {**GOOD, "lesson": "4"},
    "time as text": {**GOOD, "time": "09:15"},
    "a seat of 41 characters": {**GOOD, "seat": "x" * 41},
    "a blank seat": {**GOOD, "seat": "   "},
    "a seat on two lines": {**GOOD, "seat": "Ada\nBo"},
    "a seat that is a number": {**GOOD, "seat": 7},
    "an exercise that does not exist": {**GOOD, "exercise": "check_nothing"},
    "another lesson's exercise": {**GOOD, "lesson": 5},
    "a huge payload": {**GOOD, "seat": "Ada", "padding": "x" * 200_000},
    "a list of records": [GOOD],
    "null": None,
}


def test_bad_records_are_refused_with_400_and_nothing_is_stored(collector):
    before = collector.get("/records")
    bodies = {name: json.dumps(value).encode() for name, value in BAD.items()}
    bodies |= {"not JSON": b"seat=Ada&lesson=4", "an empty body": b"",
               "a huge body of spaces": b"{" + b" " * (MAX_BODY_BYTES * 100) + b"}"}
    for name, body in bodies.items():
        status, answer = collector.post(body)
        assert status == 400, f"{name}: {status} {answer}"
        assert answer["detail"], name
    assert collector.get("/records") == before == collector.rows_in_sqlite()
    assert collector.post(json.dumps(GOOD).encode())[0] == 201  # the same collector does store a good one
    assert collector.get("/records") == before + [GOOD] == collector.rows_in_sqlite()


def test_learners_answering_at_once_all_reach_the_room(collector):
    from concurrent.futures import ThreadPoolExecutor

    seats = [f"Seat {n}" for n in range(8)]

    def nine_wrong_then_right(seat: str) -> None:
        for tries in range(1, 11):
            record = {**GOOD, "seat": seat, "correct": tries == 10, "tries": tries, "time": time.time()}
            assert collector.post(json.dumps(record).encode())[0] == 201

    with ThreadPoolExecutor(len(seats)) as pool:
        list(pool.map(nine_wrong_then_right, seats))  # list(): a failed assertion in a thread fails the test
    arrived = collector.records_of(*seats)
    assert sorted((r["seat"], r["tries"]) for r in arrived) == [(seat, t) for seat in seats for t in range(1, 11)]
    assert arrived == collector.rows_in_sqlite(*seats)
    cells = {c["seat"]: c for c in collector.get("/grid.json")["cells"] if c["exercise"] == GOOD["exercise"]}
    assert all(cells[seat]["state"] == "right" and cells[seat]["right_on_try"] == 10 for seat in seats)


def test_an_unreachable_collector_never_fails_a_check_and_says_so_once(monkeypatch, capsys):
    exercises()  # the catalogue's one-time import is not the collector's delay
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        monkeypatch.setenv(client.ROOM_VARIABLE, f"http://127.0.0.1:{silent.getsockname()[1]}")
        started = time.perf_counter()
        verdicts = [lesson4.check_loadable_tokens(LOADABLE - 16), lesson4.check_loadable_tokens(LOADABLE)]
        waited = time.perf_counter() - started
    assert [v.correct for v in verdicts] == [False, True]
    assert "Try again" in verdicts[0].message  # the first wrong answer still gets its hint
    # Each answer waits for the collector no longer than the client's wait (the slack is for a busy machine).
    assert waited < 2 * client.WAIT_SECONDS + 5
    notice = capsys.readouterr().out.splitlines()
    assert len(notice) == 1 and "did not take this answer: no answer within 0.5 s" in notice[0]

    monkeypatch.setenv(client.ROOM_VARIABLE, f"http://127.0.0.1:{free_port()}")  # nobody listening at all
    monkeypatch.setattr(client, "_noticed", False)
    assert lesson4.check_break_penalty(PENALTY).correct is True
    assert lesson4.check_break_penalty(PENALTY).correct is True
    notice = capsys.readouterr().out.splitlines()
    assert len(notice) == 1 and "refused" in notice[0].lower()


def test_the_catalogue_read_from_source_holds_every_lessons_checks_in_order():
    import importlib
    import inspect
    import pkgutil

    import workbook.exercises

    known = exercises()
    lessons = [int(m.name[6:]) for m in pkgutil.iter_modules(workbook.exercises.__path__) if m.name.startswith("lesson")]
    assert sorted(lessons) == sorted({ex.lesson for ex in known.values()}) and len(lessons) >= 11
    for lesson in lessons:
        module = importlib.import_module(f"workbook.exercises.lesson{lesson}")
        checks = [name for name, fn in vars(module).items()
                  if name.startswith("check_") and inspect.isfunction(fn) and fn.__module__ == module.__name__]
        assert [ex.name for ex in known.values() if ex.lesson == lesson] == checks
        assert [ex.number for ex in known.values() if ex.lesson == lesson] == list(range(1, len(checks) + 1))
    assert known["check_break_penalty"].label == "lesson 4 ex 2"


def _record(seat: str, exercise: str, correct: bool, tries: int) -> Record:
    return Record(seat=seat, lesson=exercises()[exercise].lesson, exercise=exercise, correct=correct, tries=tries,
                  time=1.8e9)


def test_stuck_means_enough_wrong_answers_and_no_right_one():
    one, two = "check_loadable_tokens", "check_break_penalty"
    records = [_record("Ada", one, False, 1), _record("Bo", one, False, 1), _record("Bo", one, False, 2),
               _record("Cy", one, False, 1), _record("Cy", one, False, 2), _record("Cy", one, True, 3),
               _record("Cy", two, False, 1)]
    room = grid(records)
    states = {(c.seat, c.exercise): c.state for c in room.cells}
    assert STUCK_AFTER == 2
    assert states[("Ada", one)] == "trying" and states[("Bo", one)] == "stuck" and states[("Cy", one)] == "right"
    assert states[("Ada", two)] == "not tried" and states[("Cy", two)] == "trying"
    assert [c.summary for c in room.columns[:2]] == ["1 of 3 done, 1 stuck", "0 of 3 done, 0 stuck"]
    assert room.headline == "1 of 3 done, 1 stuck on lesson 4 ex 1"
    assert [c.label for c in room.columns] == ["lesson 4 ex 1", "lesson 4 ex 2", "lesson 4 ex 3"]
    assert grid([]).headline == "No answers yet." and grid(records[:1]).headline == "Nobody is stuck."


def test_the_help_says_how_to_open_the_room_to_its_network(capsys):
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    assert "--host 0.0.0.0" in capsys.readouterr().out


def test_a_file_that_is_not_the_rooms_is_refused_and_left_as_it_was(tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("Workshop notes, not a database. " * 100)
    before = notes.read_bytes()
    with pytest.raises(SystemExit):
        main(["serve", "--db", str(notes), "--port", str(free_port())])
    assert "is not a room's records file" in capsys.readouterr().err
    assert notes.read_bytes() == before


def _rgb(hex_colour: str) -> str:
    return "rgb({}, {}, {})".format(*(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)))


def _cells(page) -> dict:
    return {(seat, exercise): (state, colour) for seat, exercise, state, colour in page.eval_on_selector_all(
        "td[data-seat]", "cells => cells.map(c => [c.dataset.seat, c.dataset.exercise, c.dataset.state, "
                         "getComputedStyle(c).backgroundColor])")}


@pytest.mark.slow
def test_the_grid_page_in_chromium_shows_each_seat_and_follows_the_room(empty_room):
    collector = empty_room
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's package (apt-get install -y chromium) to run this check")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the page check needs PyPI's playwright")
    cy = "<b>Cy</b>"  # a seat is text, never markup
    _learner(collector.url, "Ada")
    lesson4.check_loadable_tokens(LOADABLE)
    lesson4.check_break_penalty(0)
    lesson4.check_break_penalty(1)
    _learner(collector.url, "Bo")
    lesson4.check_loadable_tokens(0)
    lesson4.check_loadable_tokens(LOADABLE)
    lesson4.check_break_penalty(0)
    lesson4.check_break_penalty(1)
    _learner(collector.url, cy)
    lesson4.check_loadable_tokens(0)

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 768})
            page.goto(collector.url + "/")
            page.wait_for_selector("td[data-seat]", timeout=30_000)
            one, two, three = "check_loadable_tokens", "check_break_penalty", "check_prompt_order"
            expected = {("Ada", one): "right", ("Ada", two): "stuck", ("Ada", three): "not tried",
                        ("Bo", one): "right", ("Bo", two): "stuck", ("Bo", three): "not tried",
                        (cy, one): "trying", (cy, two): "not tried", (cy, three): "not tried"}
            assert _cells(page) == {key: (state, _rgb(STATE_LOOK[state]["colour"])) for key, state in expected.items()}
            assert page.inner_text("#headline") == "0 of 3 done, 2 stuck on lesson 4 ex 2"
            assert page.locator("#counts li").all_inner_texts() == [
                "lesson 4 ex 1 (check_loadable_tokens): 2 of 3 done, 0 stuck",
                "lesson 4 ex 2 (check_break_penalty): 0 of 3 done, 2 stuck",
                "lesson 4 ex 3 (check_prompt_order): 0 of 3 done, 0 stuck"]
            assert page.locator("th.seat").all_inner_texts() == sorted(["Ada", "Bo", cy], key=str.casefold)
            assert page.locator("#grid b").count() == 0
            assert "2 or more wrong answers" in page.inner_text(".legend")

            lesson4.check_loadable_tokens(LOADABLE)  # Cy gets it; the open page catches up by itself
            page.wait_for_function(
                "([seat, exercise]) => [...document.querySelectorAll('td[data-seat]')].some(c => "
                "c.dataset.seat === seat && c.dataset.exercise === exercise && c.dataset.state === 'right')",
                arg=[cy, one], timeout=30_000)
            assert page.locator("#counts li").first.inner_text().endswith("3 of 3 done, 0 stuck")
        finally:
            browser.close()
