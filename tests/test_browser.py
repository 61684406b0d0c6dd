"""Every lesson executed once per test run, and every check on a lesson made on that one run.

Executing the lessons is most of `make test`'s time, so each runs once, where the most can be seen of it: in a real
JupyterLab page driven by headless Chromium (Kernel > Restart Kernel and Run All Cells, with JupyterLab recording
each cell's start and end), and the notebook is then saved. On the saved notebook the checks nbval's --nbval-lax made
are made (every code cell ran, none raised), each exercise's check cell is seen to answer, each exercise's answer is
asked of the lesson's kernel and looked for in the outputs before it (exercise_answers.py), and the lesson is timed
from its cells' timestamps: a warning above WARN_S, a failure above FAIL_S (the README promises every lesson in under
a minute). The same page is then measured at a laptop's width, resized to a desktop's and measured again, and lessons
4 and 9 have their buttons clicked. nbval therefore no longer executes the notebooks in `make test`.

Without Chromium (Debian's package at /usr/bin/chromium, or the browser WORKBOOK_CHROMIUM names) or PyPI's
`playwright` (never `playwright install`), each lesson is still executed once, by nbclient (what nbval runs), and the
same cell, exercise and time checks are made; the page checks cannot be, and each test says so in a warning.

The server runs on a free loopback port with a token, on temporary copies of the notebooks, with every Jupyter
config, data and runtime folder in a temporary directory; each lesson's kernel is shut down after its test and the
server (kernels with it) when the module ends, however it ends. How long to wait for a lesson comes from its run time
recorded in lesson_seconds.json (`pytest --record-lesson-seconds` writes this run's times there), with a wide margin,
and every wait is stretched by how busy the machine is (`busy`).
"""

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import warnings
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import nbformat
import pytest
from filelock import FileLock

from exercise_answers import CHECK_CALL, answered_before, probe_code, read_probe
from workbook.fleet.processes import free_port
from workbook.timing import usable_cores

CHROMIUM = Path(os.environ.get("WORKBOOK_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
REPO = Path(__file__).resolve().parent.parent
LESSONS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
RECORDED = Path(__file__).resolve().parent / "lesson_seconds.json"
LAPTOP, DESKTOP = 1366, 1920  # every lesson is measured at both: the same page, resized
WARN_S, FAIL_S = 60, 120  # a lesson's run time: the README's "under a minute", and twice that
CLICK_S = 20  # a widget's button: click to updated page, on an idle machine
MAX_BUSY = 4  # waits stretch with the machine's load up to this factor

pytestmark = pytest.mark.slow


def busy() -> float:
    """How many times over the machine's cores are in demand right now (the 1-minute load average per core), between
    1 and MAX_BUSY. Every wait in this file is stretched by it: a laptop busy with other work is waited for, not failed
    (a lesson that hangs still is, later). Whether a lesson was too slow is judged by its kernel's CPU time instead."""
    if not hasattr(os, "getloadavg"):  # Windows
        return 1.0
    cores = usable_cores()
    return min(MAX_BUSY, max(1.0, os.getloadavg()[0] / cores))


def patience_ms(seconds: float) -> float:
    """A wait of `seconds` on an idle machine, stretched by how busy this one is now, in playwright's milliseconds."""
    return seconds * busy() * 1000


def recorded_s(stem: str) -> float:
    """A lesson's run time as lesson_seconds.json recorded it (FAIL_S for a lesson not recorded yet)."""
    recorded = json.loads(RECORDED.read_text()) if RECORDED.is_file() else {}
    return recorded.get(stem, FAIL_S)


def wait_s(stem: str) -> float:
    """How long to wait for a lesson to run on an idle machine: four times its recorded run time plus a minute, for a
    laptop slower than the one that recorded it."""
    return 4 * recorded_s(stem) + 60


def _no_browser() -> str | None:
    """Why the page checks cannot run here, or None when they can."""
    if not CHROMIUM.is_file():
        return f"no Chromium at {CHROMIUM}: install Debian's package (apt-get install -y chromium) to check the pages"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the page checks need PyPI's playwright (pip install playwright)"
    return None


# ---------------------------------------------------------------------------------------------
# The one run of a lesson, and the checks on its cells


@pytest.fixture(scope="module")
def lesson_seconds(request):
    """Each lesson's run time in this run, {stem: seconds}; written to RECORDED at the end with
    --record-lesson-seconds."""
    seconds: dict[str, float] = {}
    yield seconds
    if request.config.getoption("--record-lesson-seconds") and seconds:
        with FileLock(f"{RECORDED}.lock"):  # each pytest-xdist worker adds the lessons it ran
            recorded = json.loads(RECORDED.read_text()) if RECORDED.is_file() else {}
            recorded.update({stem: round(s, 1) for stem, s in seconds.items()})
            RECORDED.write_text(json.dumps(dict(sorted(recorded.items())), indent=1) + "\n")


def _run_with_nbclient(lesson: Path, folder: Path) -> tuple[nbformat.NotebookNode, dict[int, list[float]], float | None]:
    """The lesson executed by nbclient in `folder`, each cell's outputs and timestamps kept; stops at a cell that
    raises, as Run All does in JupyterLab. Then, in the same kernel, the exercises' answers (`exercise_answers`) and
    the kernel's CPU seconds."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    notebook = nbformat.read(lesson, as_version=4)
    client = NotebookClient(notebook, timeout=round(wait_s(lesson.stem) * busy()), kernel_name="python3", record_timing=True,
                            resources={"metadata": {"path": str(folder)}})
    with client.setup_kernel():
        try:
            for index, cell in enumerate(notebook.cells):
                client.execute_cell(cell, index)
        except CellExecutionError:
            return notebook, {}, None  # the error is in the cell's outputs, where the checks find it
        probe = nbformat.v4.new_code_cell(kernel_questions(notebook))
        notebook.cells.append(probe)
        try:
            client.execute_cell(probe, len(notebook.cells) - 1)
        finally:
            notebook.cells.pop()
    return notebook, *_answers_and_cpu("".join(out.get("text", "") for out in probe.outputs))




def _seconds(cells) -> float:
    """From the first cell's start to the last cell's end, by the timestamps the kernel's messages carried."""
    stamps = [c.metadata.get("execution", {}) for c in cells]
    at = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
    starts = [at(s["iopub.execute_input"]) for s in stamps if "iopub.execute_input" in s]
    ends = [at(s["shell.execute_reply"]) for s in stamps if "shell.execute_reply" in s]
    assert starts and ends, "no cell carries its execution times"
    return (max(ends) - min(starts)).total_seconds()


def kernel_questions(notebook: nbformat.NotebookNode) -> str:
    """Code for the lesson's kernel once the lesson has run: the exercises' answers, then on the last line the CPU
    seconds the kernel has spent since Run All restarted it."""
    return probe_code(notebook) + "\nimport time as _time\nprint(_time.process_time())\n"


def _answers_and_cpu(said: str) -> tuple[dict[int, list[float]], float]:
    *answers, cpu = said.strip().splitlines()
    return read_probe("\n".join(answers)), float(cpu)


def _check_answers_not_given_away(notebook: nbformat.NotebookNode, stem: str, answers: dict[int, list[float]]) -> None:
    """Every check cell was probed for its answer, and no exercise's answer is printed before it is asked."""
    asked = [i for i, c in enumerate(c for c in notebook.cells if c.cell_type == "code") if CHECK_CALL.search(c.source)]
    assert sorted(answers) == asked, f"{stem}: the answer probe reached cells {sorted(answers)} of {asked}"
    leaks = answered_before(notebook, answers)
    assert not leaks, f"{stem}: an exercise is answered before it is asked: {leaks}"


def _ran_clean(notebook: nbformat.NotebookNode) -> bool:
    """No cell raised: the kernel holds the whole lesson, and can be asked about it."""
    return not any(out.output_type == "error" for cell in notebook.cells if cell.cell_type == "code"
                   for out in cell.outputs)


def _check_cells(notebook: nbformat.NotebookNode, stem: str, lesson_seconds: dict[str, float],
                 cpu_s: float | None = None) -> None:
    """What nbval --nbval-lax checked (every code cell ran, none raised); each exercise's check cell answered (the
    lessons ship with no answers, so each says it is not answered yet); the lesson ran in under FAIL_S.

    A lesson fails on time only when it took over FAIL_S on the clock *and* its kernel spent over FAIL_S of CPU
    (`cpu_s`, from the kernel itself): a lesson that waited for a machine busy with other work is warned about, not
    failed. Over WARN_S on the clock is a warning."""
    code = [c for c in notebook.cells if c.cell_type == "code"]
    for number, cell in enumerate(code):
        for out in cell.outputs:
            if out.output_type == "error":
                trace = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(out.traceback))
                pytest.fail(f"{stem}: code cell {number} raised {out.ename}: {out.evalue}\n{trace[-3000:]}")
    unrun = [number for number, cell in enumerate(code) if cell.execution_count is None]
    assert not unrun, f"{stem}: code cells {unrun} never ran"
    checks = [cell for cell in code if CHECK_CALL.search(cell.source)]
    assert checks, f"{stem}: no exercise check cell found"
    for cell in checks:
        said = "".join(out.get("data", {}).get("text/plain", "") for out in cell.outputs)
        assert "Not answered yet" in said, f"{stem}: the check cell {cell.source.splitlines()[-1]!r} said {said!r}"
    seconds = lesson_seconds[stem] = _seconds(code)
    print(f"{stem} ran in {seconds:.1f} s")
    load = f"the machine's load average was {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    cpu = "" if cpu_s is None else f", {cpu_s:.0f} s of it computing in the kernel"
    slow = seconds > FAIL_S and (cpu_s is None or cpu_s > FAIL_S)
    assert not slow, f"{stem} took {seconds:.0f} s to run{cpu}, over {FAIL_S} s (README: under a minute); {load}"
    if seconds > WARN_S:
        warnings.warn(f"{stem} took {seconds:.0f} s to run{cpu} (README: under {WARN_S} s); {load}", stacklevel=1)


# ---------------------------------------------------------------------------------------------
# JupyterLab and the page


@dataclass
class Lab:
    base: str
    token: str
    folder: Path  # the server's root: a copy of every lesson
    browser: object  # playwright's Browser
    runtime: Path  # the server's runtime folder, where each kernel's connection file is

    def url(self, path: str) -> str:
        return f"{self.base}{path}?token={self.token}"

    def ask(self, notebook: nbformat.NotebookNode) -> tuple[dict[int, list[float]], float]:
        """The exercises' answers (`exercise_answers`) and the CPU seconds the lesson took, asked of the kernel the
        lesson just ran in."""
        from jupyter_client import BlockingKernelClient

        (session,) = self.sessions()
        client = BlockingKernelClient(connection_file=str(self.runtime / f"kernel-{session['kernel']['id']}.json"))
        client.load_connection_file()
        client.start_channels()
        said = []
        try:
            reply = client.execute_interactive(kernel_questions(notebook), timeout=120 * busy(), output_hook=lambda msg: said.append(
                msg["content"].get("text", "")) if msg["msg_type"] == "stream" else None)
        finally:
            client.stop_channels()
        assert reply["content"]["status"] == "ok", f"the answer probe raised: {reply['content']}"
        return _answers_and_cpu("".join(said))

    def sessions(self) -> list[dict]:
        """The server's sessions (`/api/sessions`): each open notebook and its kernel."""
        with urllib.request.urlopen(self.url("/api/sessions"), timeout=10) as answer:
            return json.load(answer)

    def kernel_idle_s(self) -> float:
        """How long the lesson's kernel has sat idle (`idle_s`)."""
        return idle_s(self.sessions(), datetime.now(timezone.utc))

    def shut_kernels(self) -> None:
        """Shut down every session's kernel, so the next lesson has the machine to itself."""
        for session in self.sessions():
            urllib.request.urlopen(urllib.request.Request(self.url(f"/api/sessions/{session['id']}"), method="DELETE"),
                                   timeout=30).close()


def _settings(folder: Path) -> None:
    """User settings for this server only: draw every cell (no virtual scrolling), record each cell's execution
    times in the notebook, start the notebook's kernel without asking, and fetch no news."""
    tracker = folder / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True)
    tracker.write_text(json.dumps({"windowingMode": "none", "recordTiming": True, "autoStartDefaultKernel": True}))
    notify = folder / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notify.parent.mkdir(parents=True)
    notify.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))


def _wait_until_up(url: str, server: subprocess.Popen, log: Path, seconds: float = 90) -> None:
    seconds *= busy()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"jupyter lab exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"jupyter lab did not answer within {seconds:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on copies of every lesson and a headless Chromium, or None where either cannot run here;
    the server is always stopped afterwards."""
    if _no_browser():
        yield None
        return
    from playwright.sync_api import sync_playwright

    root = tmp_path_factory.mktemp("lab")
    work = root / "notebooks"
    work.mkdir()
    for lesson in LESSONS:
        shutil.copy(lesson, work)
    home = {name: root / name for name in ("config", "data", "runtime", "settings", "workspaces", "ipython")}
    for folder in home.values():
        folder.mkdir()
    _settings(home["settings"])
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(home["config"]), "JUPYTER_DATA_DIR": str(home["data"]),
           "JUPYTER_RUNTIME_DIR": str(home["runtime"]), "JUPYTERLAB_SETTINGS_DIR": str(home["settings"]),
           "JUPYTERLAB_WORKSPACES_DIR": str(home["workspaces"]), "IPYTHONDIR": str(home["ipython"]),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    port, token = free_port(), secrets.token_hex(16)
    log = root / "jupyter.log"
    with open(log, "w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
             "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}",
             "--LabApp.news_url=", "--LabApp.extension_manager=readonly", "--LabApp.expose_app_in_browser=True",
             "--LabServerApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
             *(["--allow-root"] if os.geteuid() == 0 else [])],  # containers and CI often run as root
            cwd=work, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(f"{base}/api/status?token={token}", server, log)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            try:
                yield Lab(base, token, work, browser, home["runtime"])
            finally:
                browser.close()
    finally:
        _stop(server)


def _stop(server: subprocess.Popen) -> None:
    """SIGTERM makes the server shut its kernels down and exit (two quick Ctrl-Cs may reach it as one, which only asks
    for a confirmation and waits); anything left in its process group is then killed."""
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
    try:
        os.killpg(server.pid, signal.SIGKILL)  # the group this test started: stray kernels, if any
    except ProcessLookupError:
        pass


LOST_RUN_S = 10  # the kernel idle this long after the restart with no cell run: the run was dropped


def idle_s(sessions: list[dict], now: datetime) -> float:
    """How long the one session's kernel has sat idle, by the server's account (`/api/sessions`): 0 while it is busy,
    starting or restarting, or when there is no session."""
    kernels = [s["kernel"] for s in sessions if s.get("kernel")]
    if len(kernels) != 1 or kernels[0]["execution_state"] != "idle":
        return 0.0
    last = datetime.fromisoformat(kernels[0]["last_activity"].replace("Z", "+00:00"))
    return max(0.0, (now - last).total_seconds())


def _run_all_cells(page, lab: Lab) -> None:
    """Kernel > Restart Kernel and Run All Cells, again if the run was dropped.

    Plain "Run All" right after opening can be lost while the session is still starting; a restart
    waits for a connected kernel before it queues the cells. Even so the run is sometimes dropped under load (five
    times in two runs of the suite): the kernel restarts and sits idle, while the page may show its cells queued.
    The server's account of the kernel tells: idle for `LOST_RUN_S` with no cell run, the run is tried again, rather
    than after the whole wait for a first cell (90 s or more, stretched by load).
    """
    first_cell_done = page.locator(".jp-InputArea-prompt", has_text="[1]:").first
    for _ in range(3):
        select_kernel = page.locator(".jp-Dialog", has_text="Select Kernel")
        if select_kernel.count():  # a kernel list that arrived late makes JupyterLab ask; take its suggestion
            select_kernel.get_by_role("button", name="Select").click()
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Kernel$")).click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Restart Kernel and Run All Cells")).click()
        page.locator(".jp-Dialog").get_by_role("button", name=re.compile(r"^(Restart|Confirm)")).click()
        clicked, deadline = time.monotonic(), time.monotonic() + patience_ms(90) / 1000
        while time.monotonic() < deadline:
            if first_cell_done.count():
                return
            quiet = min(lab.kernel_idle_s(), time.monotonic() - clicked)  # idle since the restart, not before it
            if quiet > patience_ms(LOST_RUN_S) / 1000:
                break
            page.wait_for_timeout(500)
    pytest.fail("Restart Kernel and Run All Cells never ran the first cell")


# Run All stops at a cell that raises: then the remaining cells never get a number, and the error is what to report.
RAN_OR_RAISED = """() => {
    const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')];
    const ran = prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.innerText));
    const raised = [...document.querySelectorAll(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")]
        .some(o => o.innerText.includes('Traceback'));
    return ran || raised; }"""
NOT_RUN = """() => [...document.querySelectorAll('.jp-CodeCell')].flatMap((cell, i) => {
    const prompt = cell.querySelector('.jp-InputArea-prompt').innerText;
    return /\\[\\d+\\]/.test(prompt) ? [] : [`code cell ${i} ${prompt} ` +
        cell.querySelector('.jp-InputArea-editor').innerText.slice(0, 80)]; })"""


def _run_in_page(page, lab: Lab, lesson: Path) -> nbformat.NotebookNode:
    """Open a lesson, restart its kernel and run every cell, wait until the run ends, save it; return the saved
    notebook, outputs and execution times included."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.goto(lab.url(f"/lab/tree/{lesson.name}") + "&reset")  # reset: no tab of an earlier lesson restored
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=patience_ms(60))
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status=idle]", timeout=patience_ms(60))
    _run_all_cells(page, lab)
    waited_ms = patience_ms(wait_s(lesson.stem))
    try:
        page.wait_for_function(RAN_OR_RAISED, timeout=waited_ms, polling=1000)
    except PlaywrightTimeout:
        pytest.fail(f"{lesson.stem} had not finished after {waited_ms / 1000:.0f} s (four times its recorded time plus "
                    f"a minute, times how busy the machine was); cells not run yet: {page.evaluate(NOT_RUN)[:5]}")
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status=idle]", timeout=patience_ms(60))
    _await_in_page(page, "window.jupyterapp.commands.execute('docmanager:save')", 60, f"saving {lesson.name}")
    return nbformat.read(lab.folder / lesson.name, as_version=4)


def _await_in_page(page, promise: str, seconds: float, what: str) -> None:
    """Await a JavaScript promise in the page, failing after `seconds` (stretched by `busy`): `evaluate` has no
    timeout of its own, so a promise that never settles (a save held by a dialog) would hang the whole run."""
    ms = patience_ms(seconds)
    outcome = page.evaluate(f"() => Promise.race([Promise.resolve({promise}).then(() => 'done'), "
                            f"new Promise(late => setTimeout(() => late('late'), {ms:.0f}))])")
    if outcome != "done":
        pytest.fail(f"{what} had not finished after {ms / 1000:.0f} s")


def _settle(page) -> None:
    """Let the page lay itself out again after a resize (JupyterLab and plotly redraw on the next frames): two
    animation frames, or two seconds where the browser draws none (it paused a page it thinks hidden, or the machine
    is too busy). `evaluate` has no timeout of its own: a promise that never settles would hang the test run."""
    page.evaluate("() => new Promise(done => { requestAnimationFrame(() => requestAnimationFrame(done)); "
                  "setTimeout(done, 2000); })")
    page.wait_for_timeout(500)


def _assert_no_cell_raised(page) -> None:
    """No traceback in any output (a lesson may print to stderr on purpose, e.g. a command line's error message)."""
    raised = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").filter(
        has_text=re.compile("Traceback"))
    assert raised.count() == 0, f"a cell raised: {raised.first.inner_text()[:500] if raised.count() else ''}"


def _assert_no_maths(page) -> None:
    """No markdown was typeset as maths (a bare dollar sign before a number turns prose into italic maths)."""
    maths = page.locator(".jp-RenderedMarkdown mjx-container")
    where = [m.evaluate("e => e.closest('p, li, td, h1, h2, h3') ? e.closest('p, li, td, h1, h2, h3').innerText : ''")
             for m in maths.all()[:3]]
    assert maths.count() == 0, f"typeset as maths: {where}"


def _assert_nothing_scrolls_sideways(page) -> None:
    """No output is wider than its cell."""
    wide = page.evaluate("""() => [...document.querySelectorAll('.jp-OutputArea-output')]
        .filter(o => o.scrollWidth > o.clientWidth + 1).length""")
    assert wide == 0, f"{wide} outputs are wider than their cell and scroll sideways"


# A widget as a lesson opens fits in about two laptop screens, so that its controls and its result are seen together.
# Lesson 4's demo, once its three requests are sent, shows a whole request's tokens, K/V rows, history and bills:
# three screens at most, with long runs folded rather than scrolled.
TALLEST_WIDGET_PX, TALLEST_FILLED_DEMO_PX = 1_500, 2_400


def _assert_no_scroll_box_inside_an_output(page, tallest: int = TALLEST_WIDGET_PX) -> None:
    """No output holds a box that scrolls by itself (a scroll inside the notebook's scroll catches the mouse wheel),
    and no widget is taller than `tallest` px. Text boxes a learner types in may scroll: that is what they do."""
    found = page.evaluate("""() => [...document.querySelectorAll('.jp-OutputArea-output')].flatMap(o => {
        const inner = [...o.querySelectorAll('*')].filter(e => !['TEXTAREA', 'INPUT', 'SELECT'].includes(e.tagName)
            && /(auto|scroll)/.test(getComputedStyle(e).overflowY) && e.scrollHeight > e.clientHeight + 1);
        const tall = o.querySelector(':scope > .jupyter-widgets') && o.getBoundingClientRect().height > %d;
        return inner.length || tall ? [o.innerText.slice(0, 80)] : [];
    })""" % tallest)
    assert not found, f"outputs that scroll inside, or widgets taller than {tallest} px: {found}"


def _check_page(page, width: int) -> None:
    """At `width` px: no traceback shown, no prose typeset as maths, every widget drawn (none left saying it could
    not be displayed), nothing scrolls sideways, no output scrolls inside itself, no widget taller than
    TALLEST_WIDGET_PX."""
    page.set_viewport_size({"width": width, "height": 2400})
    _settle(page)
    _assert_no_cell_raised(page)
    _assert_no_maths(page)
    assert page.get_by_text(re.compile(r"Error displaying widget|Loading widget")).count() == 0
    _assert_nothing_scrolls_sideways(page)
    _assert_no_scroll_box_inside_an_output(page)


# ---------------------------------------------------------------------------------------------
# Lessons 4 and 9: their buttons change the page (at a laptop's width, after the run)


def _count(page, name: str) -> int:
    """The number a counter of the prefix-cache demo shows."""
    return int(page.locator(f".wb-counter[data-name={name}] .wb-count").first.inner_text())


def _chips_of(view, provenance: str) -> int:
    """The tokens of one provenance in a view's token strip: its chips drawn, and those its folds stand for."""
    folded = re.findall(rf"… ([\d,]+) more {provenance} tokens …", " ".join(view.locator(".wb-fold").all_inner_texts()))
    return view.locator(".wb-chip").filter(has_text=provenance).count() + sum(int(n.replace(",", "")) for n in folded)


def _click_and_wait(page, button: str, condition: str) -> float:
    """Click a widget button, wait until `condition` (JavaScript) holds in the page; return the seconds taken."""
    start = time.perf_counter()
    page.get_by_role("button", name=button, exact=True).click()
    page.wait_for_function(condition, timeout=patience_ms(CLICK_S))
    return time.perf_counter() - start


def _loaded_is(test: str) -> str:
    return f"""() => {{ const el = document.querySelector('.wb-counter[data-name=loaded] .wb-count');
                        const status = document.querySelector('.wb-status');
                        return el && status && {test}; }}"""


def _click_lesson_4(page) -> None:
    """The prefix demo's requests: a cold one, a hit, a broken prefix; the radix tree's batch and evictions."""
    demo = page.locator(".jp-OutputArea-output", has=page.get_by_role("button", name="Send request 1"))
    tree = page.locator(".jp-OutputArea-output", has=page.get_by_role("button", name="Send a batch"))
    assert demo.count() == 1 and tree.count() == 1
    tree.locator(".js-plotly-plot").wait_for(timeout=patience_ms(30))
    demo.screenshot(path=SCREENSHOTS / "04_demo_after_run_all.png")
    tree.screenshot(path=SCREENSHOTS / "04_radix_tree.png")

    # Request 1: cold, nothing loaded.
    t1 = _click_and_wait(page, "Send request 1",
                         _loaded_is("el.innerText === '0' && status.innerText.startsWith('request 1')"))
    assert _count(page, "computed") > 0 and _count(page, "written") > 0
    demo.screenshot(path=SCREENSHOTS / "04_request_1.png")

    # Request 2: the system prompt's rows are loaded; no chip is invalidated.
    t2 = _click_and_wait(page, "Send request 2",
                         _loaded_is("Number(el.innerText) > 0 && status.innerText.startsWith('request 2')"))
    loaded_hit = _count(page, "loaded")
    chips = demo.locator(".wb-chip")
    assert _chips_of(demo, "loaded") == loaded_hit
    assert chips.filter(has_text="invalidated").count() == 0
    demo.screenshot(path=SCREENSHOTS / "04_request_2.png")

    # Break prefix: the date in the system prompt moves on, rows after it turn invalidated.
    date_before = demo.locator("textarea").first.input_value()
    t3 = _click_and_wait(page, "Break prefix", _loaded_is("status.innerText.startsWith('broken prefix')"))
    assert demo.locator("textarea").first.input_value() != date_before
    assert 0 <= _count(page, "loaded") < loaded_hit
    assert chips.filter(has_text="invalidated").count() > 0
    demo.screenshot(path=SCREENSHOTS / "04_break_prefix.png")

    # The radix tree answers its button too.
    before = tree.locator(".wb-radix-stats [data-name=requests] b").inner_text()
    tree.get_by_role("button", name="Send a batch").click()
    page.wait_for_function(
        f"() => document.querySelector('.wb-radix-stats [data-name=requests] b').innerText !== '{before}'",
        timeout=patience_ms(CLICK_S))
    tree.get_by_role("button", name="Show evictions").click()
    tree.get_by_text(re.compile(r"The last batch evicted")).wait_for(timeout=patience_ms(CLICK_S))
    tree.screenshot(path=SCREENSHOTS / "04_radix_tree_evictions.png")
    _assert_no_scroll_box_inside_an_output(page, TALLEST_FILLED_DEMO_PX)  # the demo and the tree, now full
    print(f"click to updated page: request 1 {t1:.2f} s, request 2 {t2:.2f} s, break prefix {t3:.2f} s")


def _click_lesson_9(page) -> None:
    """The batching timeline steps forward."""
    step = page.locator("button", has_text=re.compile(r"^\s*Step\s*$"))  # its icon is in its accessible name
    timeline = page.locator(".jp-OutputArea-output", has=step)
    assert timeline.count() == 1
    columns = "() => document.querySelector('.wb-timeline tr').children.length"
    before = page.evaluate(columns)
    timeline.locator(step).click()
    page.wait_for_function(f"() => document.querySelector('.wb-timeline tr').children.length > {before}",
                           timeout=patience_ms(CLICK_S))
    timeline.screenshot(path=SCREENSHOTS / "09_timeline.png")
    pool = page.locator(".jp-OutputArea-output", has=page.locator("button", has_text="Run one step"))
    pool.screenshot(path=SCREENSHOTS / "09_pool.png")


CLICKS = {"04_prefix_cache": _click_lesson_4, "09_serving": _click_lesson_9}


# ---------------------------------------------------------------------------------------------
# The test: one run per lesson


@pytest.mark.parametrize("lesson", [pytest.param(lesson, id=lesson.stem, marks=pytest.mark.runs_long(recorded_s(lesson.stem)))
                                    for lesson in LESSONS])
def test_every_lesson_runs_once_raises_nothing_in_time_and_its_page_fits_laptop_and_desktop(lesson, lab, lesson_seconds,
                                                                                           tmp_path):
    """One execution of the lesson: every cell ran and none raised, every exercise's check cell answered, no
    exercise's answer printed before it is asked (`exercise_answers`), the lesson ran in under FAIL_S; then, in the page it ran in, at 1366 and 1920 px: widgets drawn and in bounds; lessons 4 and
    9's buttons clicked."""
    if lab is None:
        warnings.warn(f"{lesson.stem} was executed by nbclient and its page not checked: {_no_browser()}", stacklevel=1)
        notebook, answers, cpu_s = _run_with_nbclient(lesson, tmp_path)
        _check_cells(notebook, lesson.stem, lesson_seconds, cpu_s)
        _check_answers_not_given_away(notebook, lesson.stem, answers)
        return
    page = lab.browser.new_page(viewport={"width": LAPTOP, "height": 2400})  # tall: a whole widget fits
    page.set_default_timeout(patience_ms(30))  # playwright's own default for a click or a locator, stretched
    SCREENSHOTS.mkdir(exist_ok=True)
    try:
        notebook = _run_in_page(page, lab, lesson)
        answers, cpu_s = lab.ask(notebook) if _ran_clean(notebook) else ({}, None)
        _check_cells(notebook, lesson.stem, lesson_seconds, cpu_s)
        _check_answers_not_given_away(notebook, lesson.stem, answers)
        for width in (LAPTOP, DESKTOP):
            _check_page(page, width)
        if lesson.stem in CLICKS:
            page.set_viewport_size({"width": LAPTOP, "height": 2400})
            _settle(page)
            CLICKS[lesson.stem](page)
    except BaseException:  # pytest.fail's exception too
        page.screenshot(path=SCREENSHOTS / f"{lesson.stem}_failure.png")  # what the page looked like when it went wrong
        raise
    finally:
        page.close()
        lab.shut_kernels()


def _ran(source: str, outputs: list, seconds: float = 2.5):
    """A code cell as a run leaves it: its outputs, a number, and the times JupyterLab or nbclient record (started at
    10:00, ended `seconds` later)."""
    cell = nbformat.v4.new_code_cell(source, outputs=outputs, execution_count=1)
    start = datetime(2026, 1, 1, 10)
    cell.metadata["execution"] = {"iopub.execute_input": f"{start.isoformat()}Z",
                                  "shell.execute_reply": f"{(start + timedelta(seconds=seconds)).isoformat()}Z"}
    return cell


@pytest.mark.parametrize("state, ago_s, idle", [("idle", 30, 30.0), ("busy", 30, 0.0), ("restarting", 30, 0.0),
                                                 ("starting", 30, 0.0), ("idle", -1, 0.0)])
def test_a_kernel_is_idle_for_as_long_as_the_server_says(state, ago_s, idle):
    """`idle_s` from a session list shaped like JupyterLab's `/api/sessions`: what tells a dropped run from a slow one."""
    now = datetime(2026, 12, 6, 16, 33, 57, tzinfo=timezone.utc)
    stamp = (now - timedelta(seconds=ago_s)).isoformat().replace("+00:00", "Z")
    sessions = [{"path": "09_serving.ipynb", "kernel": {"execution_state": state, "last_activity": stamp}}]
    assert idle_s(sessions, now) == idle
    assert idle_s([], now) == 0.0 and idle_s(sessions * 2, now) == 0.0  # no session, or not one to tell


def test_the_cell_checks_catch_a_raise_an_unrun_cell_a_silent_check_and_a_slow_lesson():
    """The checks made on a lesson's one run fail on each thing they are there to catch, and pass a good run."""
    said = nbformat.v4.new_output("execute_result", {"text/plain": "✏️ Not answered yet. Set the answer."})
    good = [_ran("x = 1", []), _ran("answer_1 = None\ncheck_thing(answer_1)", [said])]
    seconds: dict[str, float] = {}
    _check_cells(nbformat.v4.new_notebook(cells=good), "good", seconds)
    assert seconds == {"good": 2.5}  # from the first cell's start to the last one's end

    raised = nbformat.v4.new_output("error", ename="ZeroDivisionError", evalue="division by zero",
                                    traceback=["\x1b[31mZeroDivisionError\x1b[0m: division by zero"])
    unrun = nbformat.v4.new_code_cell("y = 2")
    with pytest.warns(UserWarning, match=f"under {WARN_S} s"):
        _check_cells(nbformat.v4.new_notebook(cells=[_ran("z = 3", [], WARN_S + 1), good[1]]), "slowish", {})
    slow = _ran("z = 3", [], FAIL_S + 1)
    with pytest.warns(UserWarning, match="computing in the kernel"):  # a busy machine's slowness: warned, not failed
        _check_cells(nbformat.v4.new_notebook(cells=[slow, good[1]]), "waited", {}, cpu_s=FAIL_S / 2)
    cases = {"ZeroDivisionError": [_ran("1 / 0", [raised]), *good], r"\[1\] never ran": [good[0], unrun, good[1]],
             "said ''": [good[0], _ran("lesson.check_thing(None)", [])], "no exercise check cell": good[:1],
             f"over {FAIL_S} s": [slow, good[1]]}
    for message, cells in cases.items():
        with pytest.raises((AssertionError, pytest.fail.Exception), match=message):
            _check_cells(nbformat.v4.new_notebook(cells=cells), "bad", {})


@pytest.mark.parametrize("load, cores, factor", [(0.3, 2, 1.0), (2.0, 2, 1.0), (5.0, 2, 2.5), (40.0, 2, MAX_BUSY),
                                                 (6.0, 4, 1.5)])
def test_waits_stretch_with_the_load_per_core_from_1_up_to_max_busy(monkeypatch, load, cores, factor):
    monkeypatch.setattr(os, "getloadavg", lambda: (load, 0.0, 0.0))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    assert busy() == factor
    assert patience_ms(20) == 20_000 * factor
