"""The package's layers: a module imports from its own layer and the ones below, never from a later one.

The layers, bottom to top (the README's Layout section shows the same order):

0. core: every module and subpackage not named below (the model, the K/V path, the server and engine, tokenizer,
   pricing and providers, timing, counting, semantic/, audit/), so a new core module is checked without being listed;
1. lessons/: lesson scenario data and lab logic that is not a view;
2. doctor/, serve/, fleet/: the applications run with `python -m` (the doctor's example logs come from lesson 4's shop);
3. widgets/: one view per idea;
4. room/: the facilitator's collector (its page reuses the widgets' style; the exercises send it their records);
5. exercises/: the check-yourself functions;
6. bench/, training/, book.py, room_check.py: tools on top (benchmarks, the offline training, the site, `make check`).

Imports inside functions count as well: a lazy import still ties the layers together.
"""

from __future__ import annotations

import ast
from pathlib import Path

import workbook

LAYER = {"lessons": 1, "doctor": 2, "serve": 2, "fleet": 2, "widgets": 3, "room": 4, "exercises": 5,
         "bench": 6, "training": 6, "book": 6, "room_check": 6}
PACKAGE_DIR = Path(workbook.__file__).parent


def imported_units(path: Path, package_dir: Path) -> list[tuple[str, int]]:
    """(the top-level part of the package each import in `path` reaches, line): `lessons` for
    `from ..lessons.scenarios import X`, `tokenizer` for `from .tokenizer import Y`."""
    package = package_dir.name
    here = [package, *path.relative_to(package_dir).with_suffix("").parts]
    parent = here[:-1]  # the package a relative import starts from (for __init__.py, its own)
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name.split(".") for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = parent[:len(parent) - node.level + 1] if node.level else []
            module = base + (node.module.split(".") if node.module else [])
            names = [module] if len(module) > 1 else [module + [alias.name] for alias in node.names]
        else:
            continue
        found += [(name[1], node.lineno) for name in names if len(name) > 1 and name[0] == package]
    return found


def unit_of(path: Path, package_dir: Path) -> str:
    """The top-level part of the package a file belongs to: its subpackage, or its own name for a module."""
    return path.relative_to(package_dir).with_suffix("").parts[0]


def layer_violations(package_dir: Path, layer: dict[str, int]) -> list[str]:
    """Every import of a later layer, as 'file:line: unit (layer) imports unit (layer)'."""
    violations = []
    for path in sorted(package_dir.rglob("*.py")):
        source = unit_of(path, package_dir)
        for target, line in imported_units(path, package_dir):
            if layer.get(target, 0) > layer.get(source, 0):
                violations.append(f"{path.relative_to(package_dir.parent)}:{line}: {source} (layer "
                                  f"{layer.get(source, 0)}) imports {target} (layer {layer[target]})")
    return violations


def test_no_module_imports_a_later_layer():
    assert layer_violations(PACKAGE_DIR, LAYER) == []


def test_every_named_layer_exists():
    """A renamed subpackage must not leave its old name here, unchecked."""
    present = {unit_of(path, PACKAGE_DIR) for path in PACKAGE_DIR.rglob("*.py")}
    assert set(LAYER) <= present


def test_import_workbook_loads_only_the_core():
    """The names `workbook` exports on first use come from core modules."""
    assert {LAYER.get(module, 0) for module in workbook._SOURCES} == {0}


def plant(tmp_path: Path, files: dict[str, str]) -> Path:
    """A package `pkg` in tmp_path holding `files` (path -> source), with an __init__.py in every folder."""
    root = tmp_path / "pkg"
    for name, source in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
    for folder in [root, *[p for p in root.rglob("*") if p.is_dir()]]:
        (folder / "__init__.py").touch()
    return root


def test_a_planted_upward_import_is_found_in_every_spelling(tmp_path):
    root = plant(tmp_path, {
        "model.py": "from .lessons.scenarios import SHOP\n",
        "server.py": "def f():\n    import pkg.widgets.view\n",  # lazy, absolute
        "kv/pool.py": "from ..bench import timing\n",  # a core subpackage, two levels up
        "engine.py": "from . import exercises\n",
        "lessons/scenarios.py": "from ..bench.serving import measure\nSHOP = 1\n",  # the cycle of issue 29
        "lessons/__init__.py": "from ..training import corpus\n",
        "widgets/view.py": "", "exercises/lesson1.py": "", "bench/serving.py": "", "bench/timing.py": "",
        "training/corpus.py": "",
    })
    found = layer_violations(root, LAYER)
    assert sorted(v.split(":")[0] for v in found) == sorted([
        "pkg/engine.py", "pkg/kv/pool.py", "pkg/lessons/__init__.py", "pkg/lessons/scenarios.py", "pkg/model.py",
        "pkg/server.py"])
    assert "pkg/model.py:1: model (layer 0) imports lessons (layer 1)" in found
    assert "pkg/lessons/scenarios.py:1: lessons (layer 1) imports bench (layer 6)" in found


def test_imports_down_and_sideways_are_allowed(tmp_path):
    root = plant(tmp_path, {
        "model.py": "from .tokenizer import encode\nimport pkg.pricing\nimport json\n",
        "tokenizer.py": "def encode(): ...\n", "pricing.py": "",
        "bench/serving.py": "from ..lessons import scenarios\nfrom pkg.widgets import view\nfrom .. import model\n",
        "lessons/scenarios.py": "from ..model import x\nfrom . import other\n", "lessons/other.py": "",
        "widgets/view.py": "from ..lessons.scenarios import SHOP\n",
    })
    assert layer_violations(root, LAYER) == []
