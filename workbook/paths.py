"""Where the workbook keeps its shipped files: models, corpus, price sheets, benchmark results."""

from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = REPO_DIR / "data"
MODELS_DIR = DATA_DIR / "models"
BENCHMARKS_DIR = DATA_DIR / "benchmarks"


def shipped_model_names() -> list[str]:
    """Short names of the models under data/models/ (each a folder with a config.json)."""
    if not MODELS_DIR.is_dir():
        return []
    return sorted(p.name for p in MODELS_DIR.iterdir() if (p / "config.json").is_file())
