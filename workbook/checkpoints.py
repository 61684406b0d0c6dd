"""Finding a checkpoint folder from a short name, a local path or a Hugging Face hub name.

Nothing here reaches the network unless the caller asks for it with `allow_download=True`.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from .errors import UnknownModelError
from .paths import MODELS_DIR, shipped_model_names

# The setting that swaps the embedded model for another one everywhere (notebooks, benchmarks).
MODEL_SETTING = "WORKBOOK_MODEL"
DRAFT_SETTING = "WORKBOOK_DRAFT_MODEL"
CHECKPOINT_FILES = ["config.json", "*.safetensors", "*.safetensors.index.json", "tokenizer*", "special_tokens_map.json",
                    "generation_config.json", "vocab.json", "merges.txt"]


def default_model() -> str:
    """The model lessons use: $WORKBOOK_MODEL if set, else the shipped `tiny`."""
    return os.environ.get(MODEL_SETTING, "tiny")


def use_model(name_or_path: str) -> str:
    """Make `name_or_path` the model every later `default_model()` returns (as $WORKBOOK_MODEL does), once it is found.

    One line at the top of a notebook switches its lessons, e.g. `workbook.use_model("smollm2-135m-instruct")`.
    """
    from .gguf_loader import gguf_file

    if gguf_file(name_or_path) is None:
        resolve_checkpoint(name_or_path)
    os.environ[MODEL_SETTING] = str(name_or_path)
    return str(name_or_path)


def default_draft_model() -> str:
    """The draft model for speculative decoding: $WORKBOOK_DRAFT_MODEL if set, else the shipped `tiny-draft`."""
    return os.environ.get(DRAFT_SETTING, "tiny-draft")


def resolve_checkpoint(name_or_path: str | os.PathLike, *, allow_download: bool = False) -> Path:
    """The folder holding a checkpoint's config.json, weights and tokenizer files."""
    if not str(name_or_path).strip():
        raise UnknownModelError(f"No model named. {_choices()}")
    name = str(name_or_path)
    if name in shipped_model_names():
        return MODELS_DIR / name
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UnknownModelError(f"{path} has no config.json, so it is not a Hugging Face checkpoint folder.")
        return path
    if path.is_absolute() or name.startswith(".") or name.count("/") > 1:
        raise UnknownModelError(f"There is no folder {path}. {_choices()}")
    return _from_hub_cache(name, allow_download)


def _from_hub_cache(repo_id: str, allow_download: bool) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, allow_patterns=CHECKPOINT_FILES, local_files_only=not allow_download))
    except Exception as exc:  # the hub raises several kinds: not cached, offline, no such repo
        how = ("it could not be downloaded" if allow_download
               else "it is not in the local Hugging Face cache and downloads are off (pass allow_download=True)")
        raise UnknownModelError(f"Unknown model {repo_id!r}: {how}. {_choices()}") from exc


def _choices() -> str:
    return (f"Shipped models: {', '.join(shipped_model_names()) or 'none found in ' + str(MODELS_DIR)}; "
            "or give a local folder with config.json and *.safetensors, or a hub name already in your cache.")


def vocabulary_fingerprint(folder: Path) -> str | None:
    """A hash of what each token id means in a checkpoint's tokenizer; None when the folder has no tokenizer file.

    Two checkpoints with the same fingerprint turn every token id into the same text, so one can
    draft for the other. Merges are left out: they change how text is cut, not what an id means.
    """
    if (folder / "tokenizer.json").is_file():
        data = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
        meaning = [data.get("model", {}).get("vocab"), [(t["id"], t["content"]) for t in data.get("added_tokens", [])]]
    elif (folder / "vocab.json").is_file():
        meaning = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    else:
        return None
    return hashlib.sha256(json.dumps(meaning, sort_keys=True).encode()).hexdigest()
