"""`python -m workbook.book`: a lesson run and written out as a static page whose charts and widgets work offline."""

import os
import re
import shutil

import pytest
from filelock import FileLock

from workbook.book import STATIC_NOTE, VENDORED, copy_widget_scripts, lesson_paths, main, plotly_renderer
from workbook.errors import WorkbookError
from workbook.paths import DATA_DIR


@pytest.fixture(scope="session")
def book(tmp_path_factory, worker_id):
    """Lesson 3 (two plotly charts, two widgets) built into a fresh folder, once per run: under pytest-xdist the
    first worker to ask builds it in the run's shared temporary folder and the others wait for it (building runs
    the lesson, ten seconds or more)."""
    run_folder = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        run_folder = run_folder.parent  # each worker's folder sits in the run's one
    out = run_folder / "book"
    with FileLock(f"{out}.lock"):
        if not (out / "index.html").is_file():
            main(["03_kv_cache", "--out", str(out)])
    return out, out / "index.html"


def test_the_page_carries_plotly_itself_and_fetches_no_chart_script(book):
    out, _ = book
    page = (out / "03_kv_cache.html").read_text(encoding="utf-8")
    assert re.search(r"plotly\.js v\d+\.\d+\.\d+", page)  # the library itself, inlined by the "notebook" renderer
    assert not re.search(r'<script[^>]*src="[^"]*plot', page)  # nor a script tag that would fetch it
    assert page.count('class="plotly-graph-div"') >= 2  # the lesson's charts, drawn


def test_the_page_keeps_the_widgets_state_and_says_they_work_in_jupyterlab(book):
    out, _ = book
    page = (out / "03_kv_cache.html").read_text(encoding="utf-8")
    assert "application/vnd.jupyter.widget-state+json" in page and "application/vnd.jupyter.widget-view+json" in page
    assert STATIC_NOTE.split("*")[1].split("{")[0] in page and "make lab" in page


def test_the_page_loads_its_widget_scripts_from_beside_it_and_from_no_cdn(book):
    out, _ = book
    page = (out / "03_kv_cache.html").read_text(encoding="utf-8")
    sources = re.findall(r'<script[^>]*src="([^"]*)"', page) + re.findall(r"widgetRendererSrc = '([^']*)'", page)
    assert "widgets/require.js" in sources and "widgets/embed-amd.js" in sources
    assert not [src for src in sources if re.match(r"(https?:)?//", src) and re.search("require|widget", src)]
    scripts = out / "widgets"
    assert (scripts / "embed-amd.js").read_bytes() == (DATA_DIR / "widgets" / "embed-amd.js").read_bytes()
    assert 'require.config({paths: {anywidget: "widgets/anywidget"}})' in (scripts / "require.js").read_text()
    assert (scripts / "anywidget.js").read_text().count('define(["@jupyter-widgets/base"]') == 1  # an AMD module


def test_a_changed_vendored_script_is_refused_and_nothing_is_copied(tmp_path):
    vendored = tmp_path / "vendored"
    shutil.copytree(DATA_DIR / "widgets", vendored)
    with open(vendored / "require.js", "a", encoding="utf-8") as f:
        f.write("// edited\n")
    with pytest.raises(WorkbookError, match="require.js is not the copy"):
        copy_widget_scripts(tmp_path / "book", vendored)
    assert not (tmp_path / "book").exists()
    assert set(VENDORED) <= {p.name for p in (DATA_DIR / "widgets").iterdir()}


def test_the_index_links_every_page_built(book):
    out, index = book
    assert index == out / "index.html"
    assert 'href="03_kv_cache.html"' in index.read_text(encoding="utf-8")


def test_an_unknown_lesson_is_refused_with_the_list():
    with pytest.raises(WorkbookError, match="03_kv_cache"):
        lesson_paths(["99_nothing"])
    assert [p.stem[:2] for p in lesson_paths()] == sorted(p.stem[:2] for p in lesson_paths())


def test_the_renderer_setting_is_undone_after_the_build():
    before = os.environ.get("PLOTLY_RENDERER")
    with plotly_renderer("notebook"):
        assert os.environ["PLOTLY_RENDERER"] == "notebook"
    assert os.environ.get("PLOTLY_RENDERER") == before


@pytest.mark.slow
def test_the_charts_and_widgets_draw_in_a_browser_that_cannot_reach_the_network(book):
    """Headless Chromium opens the page with every http(s) request refused: plotly still draws both charts, and the
    decode stepper draws its buttons and prompt box (ipywidgets' controls) and its chart (a plotly FigureWidget,
    which is an anywidget)."""
    from test_browser import CHROMIUM, CHROMIUM_ARGS

    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's package (apt-get install -y chromium) to run this check")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the browser check needs PyPI's playwright")
    out, _ = book
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 768})
            refused = []
            page.route(re.compile(r"^https?://"), lambda route: (refused.append(route.request.url), route.abort()))
            page.goto((out / "03_kv_cache.html").as_uri())
            page.locator(".plotly-graph-div .main-svg").first.wait_for(timeout=30_000)
            assert page.locator(".plotly-graph-div").evaluate_all(
                "divs => divs.filter(d => d.querySelector('.main-svg')).length") == 2
            page.locator("button.jupyter-button", has_text="Step ×10").wait_for(timeout=30_000)
            assert page.locator("button.jupyter-button", has_text="Reset").count() >= 1
            assert page.locator(".widget-text input").first.input_value().startswith("May the force")
            # The FigureWidget draws a plot of its own, inside a widget: more plots than the two charts.
            page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length > 2", timeout=30_000)
            page.wait_for_function("[...document.fonts].some(f => f.family.startsWith('Font Awesome') && "
                                   "f.status === 'loaded')", timeout=30_000)  # the buttons' icons
            assert not [url for url in refused if "require" in url or "html-manager" in url or "anywidget" in url]
        finally:
            browser.close()
