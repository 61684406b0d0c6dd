"""`python -m workbook.book`: every lesson run and written out as a static HTML page, to read without running.

nbconvert runs each notebook in a fresh kernel and exports it with its outputs. The kernel draws charts with
plotly's "notebook" renderer, which puts plotly.js into the page itself, so the charts work offline. Widgets
keep the state the lesson left them in, drawn by the HTML widget manager, require.js and anywidget's front end,
which the build copies into `widgets/` beside the pages (from data/widgets/ and the installed anywidget), so
they draw offline too; a note at the top of each page says they work in JupyterLab.

    python -m workbook.book                  # every lesson -> build/book/ (git ignores build/)
    python -m workbook.book 03_kv_cache      # just one
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import html
import os
import shutil
from importlib import resources
from pathlib import Path
from unittest import mock

from .errors import WorkbookError
from .paths import DATA_DIR, REPO_DIR

NOTEBOOKS_DIR = REPO_DIR / "notebooks"
BOOK_DIR = REPO_DIR / "build" / "book"
SCRIPTS = "widgets"  # the folder beside the pages that holds the widget scripts, named relative to each page
# The manager's CSS asks for its icon font (Font Awesome's solid face) beside the module require.js loaded it as.
ICON_FONT, ICON_FONT_DIR = "1551f4f60c37af51121f.woff2", "@jupyter-widgets/html-manager/dist"
# Files of data/widgets/ (see its README: versions, sources, licences) and the SHA-256 of the copies committed.
VENDORED = {
    "embed-amd.js": "ca87dff57c70ffb2658794fde0eab0e27e5f5472a1f5df7ab2b08e1039fc4b72",  # @jupyter-widgets/html-manager 1.0.15
    "require.js": "c1fc6b1d53af7522f78d664922abb32acac64ed0ecccb8f907f1e6fc7262563a",  # requirejs 2.3.8
    ICON_FONT: "9834b82ad26e2a37583d22676a12dd2eb0fe7c80356a2114d0db1aa8b3899537",  # the same package's icon font
}
# require.js looks a module up by this path (relative to the page) before it would try a CDN.
ANYWIDGET_PATH = f'\nrequire.config({{paths: {{anywidget: "{SCRIPTS}/anywidget"}}}});\n'
STATIC_NOTE = ("*A static copy of this lesson, run on {day}.* The charts work here (hover, zoom), but each widget only "
               "shows the state the lesson left it in: open the notebook in JupyterLab (`make lab`) to use it.")


def lesson_paths(names=None) -> list[Path]:
    """The lessons' notebooks, in order; `names` (stems like '03_kv_cache') picks some of them."""
    lessons = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
    if not names:
        return lessons
    by_name = {p.stem: p for p in lessons}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise WorkbookError(f"No lesson named {', '.join(unknown)}; the lessons are {', '.join(by_name)}.")
    return [by_name[n] for n in names]


def plotly_renderer(name: str):
    """Start kernels with plotly drawing through `name` (plotly reads PLOTLY_RENDERER at import); undone after."""
    return mock.patch.dict(os.environ, {"PLOTLY_RENDERER": name})


def copy_widget_scripts(out_dir: Path, vendored_dir: Path = DATA_DIR / "widgets") -> Path:
    """Put the widget manager, require.js (told where anywidget is) and anywidget's front end in `out_dir/widgets/`,
    and the buttons' icon font where the manager looks for it."""
    for name, sha256 in VENDORED.items():
        if hashlib.sha256((vendored_dir / name).read_bytes()).hexdigest() != sha256:
            raise WorkbookError(f"{vendored_dir / name} is not the copy data/widgets/README.md describes: restore it "
                                "with git checkout -- data/widgets, or update it as that README says.")
    scripts = out_dir / SCRIPTS
    scripts.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(vendored_dir / "embed-amd.js", scripts / "embed-amd.js")
    (scripts / "require.js").write_text((vendored_dir / "require.js").read_text(encoding="utf-8") + ANYWIDGET_PATH,
                                        encoding="utf-8")
    (scripts / "anywidget.js").write_bytes((resources.files("anywidget") / "nbextension" / "index.js").read_bytes())
    (out_dir / ICON_FONT_DIR).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(vendored_dir / ICON_FONT, out_dir / ICON_FONT_DIR / ICON_FONT)
    return scripts


def build_page(notebook: Path, out_dir: Path, *, timeout_s: int = 600) -> Path:
    """Run one lesson and write it, outputs and widget state included, as `out_dir/<lesson>.html`."""
    import nbformat
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import ExecutePreprocessor

    nb = nbformat.read(notebook, as_version=4)
    with plotly_renderer("notebook"):
        ExecutePreprocessor(timeout=timeout_s, kernel_name="python3", store_widget_state=True).preprocess(
            nb, {"metadata": {"path": str(notebook.parent)}})
    nb.cells.insert(0, nbformat.v4.new_markdown_cell(STATIC_NOTE.format(day=dt.date.today().isoformat())))
    page, _ = HTMLExporter(template_name="lab", require_js_url=f"{SCRIPTS}/require.js",
                           widget_renderer_url=f"{SCRIPTS}/embed-amd.js").from_notebook_node(nb)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{notebook.stem}.html"
    path.write_text(page, encoding="utf-8")
    return path


def write_index(out_dir: Path) -> Path:
    """A contents page linking every lesson page in `out_dir`, built now or before."""
    items = "\n".join(f'<li><a href="{p.name}">{html.escape(p.stem.replace("_", " "))}</a></li>'
                      for p in sorted(out_dir.glob("[0-9][0-9]_*.html")))
    path = out_dir / "index.html"
    path.write_text(f"<!doctype html>\n<meta charset='utf-8'>\n<title>Prompt Cache Workbook</title>\n"
                    f"<h1>Prompt Cache Workbook</h1>\n<p>Static copies of the lessons.</p>\n<ol>\n{items}\n</ol>\n",
                    encoding="utf-8")
    return path


def main(argv=None) -> Path:
    parser = argparse.ArgumentParser(prog="python -m workbook.book", description=__doc__.split("\n")[0])
    parser.add_argument("lessons", nargs="*", help="lesson names like 03_kv_cache (default: every lesson)")
    parser.add_argument("--out", type=Path, default=BOOK_DIR, help=f"output folder (default: {BOOK_DIR})")
    options = parser.parse_args(argv)
    from tqdm.auto import tqdm

    lessons = lesson_paths(options.lessons)
    copy_widget_scripts(options.out)
    pages = [build_page(nb, options.out) for nb in tqdm(lessons, desc="lessons")]
    index = write_index(options.out)
    print(f"wrote {len(pages)} lesson page(s) and {index}")
    return index


if __name__ == "__main__":
    main()
