"""Byte-level BPE written out: train, encode, decode, inspect merges, and read/write `tokenizer.json`.

Text becomes UTF-8 bytes; each byte is shown as one printable character (GPT-2's trick, so
a space is "Ġ"); the text is cut into pieces by a regular expression; inside each piece the
learned merges join neighbouring symbols, lowest rank first. Same text in, same ids out:
this determinism is what makes a cached prefix findable at all.
"""

from __future__ import annotations

import json
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

import regex

from .checkpoints import resolve_checkpoint
from .errors import EmptyInputError, WorkbookError
from .paths import shipped_model_names

# GPT-2's pre-tokenizer: contractions, words with their leading space, numbers, punctuation runs, spaces.
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


@lru_cache(maxsize=1)
def byte_to_char() -> dict[int, str]:
    """Map every byte to a printable character: printable Latin-1 bytes stand for themselves, the rest shift up."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, shift = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + shift)
            shift += 1
    return table


@lru_cache(maxsize=1)
def char_to_byte() -> dict[str, int]:
    return {c: b for b, c in byte_to_char().items()}


def shared_prefix_length(ids_a: Sequence[int], ids_b: Sequence[int]) -> int:
    """How many leading items two sequences share: the length of both when they are equal, of the shorter when one
    begins the other, 0 when either is empty.

    Everything before it could come from a cache, nothing after it can. Works on any two sequences (ids, text); it
    compares slices, which Python runs at C speed on long prompts: growing ones from the start (prompts often part
    early, at a clock or a name), then halving the range where they part.
    """
    if len(ids_a) == len(ids_b) and ids_a == ids_b:
        return len(ids_a)
    low, high = 0, min(len(ids_a), len(ids_b))  # the answer lies in [low, high]
    step = 16
    while step < high and ids_a[:step] == ids_b[:step]:
        low, step = step, step * 4
    if step < high:  # they part within the first `step`
        high = step - 1
    while low < high:
        middle = (low + high + 1) // 2
        if ids_a[:middle] == ids_b[:middle]:
            low = middle
        else:
            high = middle - 1
    return low


def first_divergence(ids_a: Sequence[int], ids_b: Sequence[int]) -> int | None:
    """Index of the first token where two prompts differ; None if they are identical.

    If one is a prefix of the other, that is the length of the shorter (`shared_prefix_length` gives the shared
    length in every case, identical prompts included).
    """
    shared = shared_prefix_length(ids_a, ids_b)
    return None if shared == len(ids_a) == len(ids_b) else shared


class BPETokenizer:
    """A byte-level BPE tokenizer: a vocabulary, an ordered list of merges and some special tokens."""

    def __init__(self, vocab: dict[str, int], merges: Sequence[tuple[str, str]], special_tokens: dict[str, int] | None = None,
                 *, pattern: str = GPT2_PATTERN, ignore_merges: bool = False, chat_templates: dict[str, str] | None = None,
                 bos_token: str | None = None, eos_token: str | None = None):
        self.vocab = dict(vocab)
        self.merges = [tuple(m) for m in merges]
        self.merge_ranks = {pair: rank for rank, pair in enumerate(self.merges)}
        self.special_tokens = dict(special_tokens or {})
        self.id_to_token = {i: t for t, i in {**self.vocab, **self.special_tokens}.items()}
        self.pattern = pattern
        self._splitter = regex.compile(pattern)
        # Longest first, so one special token that contains another is matched whole.
        specials = sorted(self.special_tokens, key=len, reverse=True)
        self._special_splitter = regex.compile("(" + "|".join(map(regex.escape, specials)) + ")") if specials else None
        self.ignore_merges = ignore_merges
        self.chat_templates = dict(chat_templates or {})
        self.bos_token, self.eos_token = bos_token, eos_token
        self._piece_cache: dict[str, list[int]] = {}

    # ----- training ---------------------------------------------------------------------------

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int, special_tokens: Sequence[str] = ()) -> BPETokenizer:
        """Learn merges from `texts` until the vocabulary has `vocab_size` entries.

        Written for reading, not speed: every round recounts all neighbouring pairs in all words
        and merges the most frequent one. Fine for a few pages of text.
        """
        if vocab_size < 256 + len(special_tokens):
            raise WorkbookError(f"vocab_size must be at least {256 + len(special_tokens)}: 256 bytes plus the special tokens.")
        to_char = byte_to_char()
        word_counts = Counter()
        for text in texts:
            for piece in regex.findall(GPT2_PATTERN, text):
                word_counts[tuple(to_char[b] for b in piece.encode("utf-8"))] += 1
        special = {tok: i for i, tok in enumerate(special_tokens)}
        vocab = {to_char[b]: len(special) + b for b in range(256)}
        merges: list[tuple[str, str]] = []
        while len(special) + len(vocab) < vocab_size:
            pair_counts = Counter()
            for word, count in word_counts.items():
                for pair in zip(word, word[1:]):
                    pair_counts[pair] += count
            if not pair_counts:
                break  # every word is a single symbol: nothing left to merge
            # Most frequent pair; ties go to the pair that sorts first, so training is deterministic.
            best = min(pair_counts, key=lambda p: (-pair_counts[p], p))
            merges.append(best)
            vocab[best[0] + best[1]] = len(special) + len(vocab)
            word_counts = Counter({_merge(word, best): count for word, count in word_counts.items()})
        return cls(vocab, merges, special)

    # ----- encoding and decoding --------------------------------------------------------------

    def encode(self, text: str, *, allow_special: bool = True) -> list[int]:
        """Token ids for `text`. Special tokens written in the text (e.g. `<|user|>`) become their ids."""
        if not isinstance(text, str):
            raise WorkbookError(f"encode() takes a str, not {type(text).__name__}.")
        ids: list[int] = []
        chunks = self._special_splitter.split(text) if allow_special and self._special_splitter else [text]
        for chunk in chunks:
            if chunk in self.special_tokens and allow_special:
                ids.append(self.special_tokens[chunk])
            elif chunk:
                for piece in self._splitter.findall(chunk):
                    ids.extend(self._encode_piece(piece))
        return ids

    def _encode_piece(self, piece: str) -> list[int]:
        if piece not in self._piece_cache:
            symbols = "".join(byte_to_char()[b] for b in piece.encode("utf-8"))
            if self.ignore_merges and symbols in self.vocab:
                self._piece_cache[piece] = [self.vocab[symbols]]
            else:
                try:
                    self._piece_cache[piece] = [self.vocab[s] for s in self.bpe(symbols)]
                except KeyError as missing:
                    raise WorkbookError(f"Symbol {missing} is not in the vocabulary: this tokenizer lacks some bytes.") from None
        return self._piece_cache[piece]

    def bpe(self, symbols: str) -> list[str]:
        """Apply the merges to one piece: repeatedly join the adjacent pair with the lowest merge rank."""
        parts = list(symbols)
        while len(parts) > 1:
            ranked = [(self.merge_ranks.get(pair, len(self.merges)), pair) for pair in zip(parts, parts[1:])]
            rank, pair = min(ranked)
            if rank == len(self.merges):
                break  # no adjacent pair was ever merged in training
            parts = list(_merge(tuple(parts), pair))
        return parts

    def decode(self, ids: Iterable[int]) -> str:
        """Text for `ids`; an exact inverse of `encode` for any Unicode string."""
        return b"".join(self.token_bytes(i) for i in ids).decode("utf-8", errors="replace")

    def token_bytes(self, token_id: int) -> bytes:
        """The raw bytes one token stands for (a token may hold part of a multi-byte character)."""
        token = self.id_to_token.get(int(token_id))
        if token is None:
            raise WorkbookError(f"Token id {token_id} is not in this tokenizer (ids run 0..{self.vocab_size - 1}).")
        if token in self.special_tokens:
            return token.encode("utf-8")
        return bytes(char_to_byte()[c] for c in token)

    def token_texts(self, ids: Iterable[int]) -> list[str]:
        """One readable string per token, for showing tokens as chips."""
        return [self.token_bytes(i).decode("utf-8", errors="backslashreplace") for i in ids]

    @property
    def vocab_size(self) -> int:
        return len(self.id_to_token)

    @property
    def eos_token_id(self) -> int | None:
        return self.special_tokens.get(self.eos_token) if self.eos_token else None

    @property
    def bos_token_id(self) -> int | None:
        return self.special_tokens.get(self.bos_token) if self.bos_token else None

    def readable_merges(self, n: int | None = None) -> list[str]:
        """The first `n` merges in the order they were learned, e.g. 'Ġ + t -> Ġt'."""
        return [f"{a} + {b} -> {a + b}" for a, b in self.merges[:n]]

    # ----- chat templates ---------------------------------------------------------------------

    def apply_chat_template(self, messages: list[dict], *, add_generation_prompt: bool = True,
                            template: str | None = None, **variables) -> str:
        """Render chat messages to text with the checkpoint's Jinja template (the named one, or "default")."""
        return render_chat(self.chat_templates, messages, add_generation_prompt, template,
                           bos_token=self.bos_token or "", eos_token=self.eos_token or "", **variables)

    def encode_chat(self, messages: list[dict], **kwargs) -> list[int]:
        return self.encode(self.apply_chat_template(messages, **kwargs))

    # ----- tokenizer.json ---------------------------------------------------------------------

    def save(self, folder: str | Path) -> None:
        """Write `tokenizer.json` (and `tokenizer_config.json` with the chat templates) in Hugging Face form."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
        data = {
            "version": "1.0", "truncation": None, "padding": None,
            "added_tokens": [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                              "normalized": False, "special": True} for t, i in self.special_tokens.items()],
            "normalizer": None, "pre_tokenizer": byte_level, "post_processor": None, "decoder": byte_level,
            "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                      "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                      "ignore_merges": self.ignore_merges, "vocab": {**self.special_tokens, **self.vocab},
                      "merges": [list(m) for m in self.merges]},
        }
        (folder / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
        config = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": self.bos_token, "eos_token": self.eos_token}
        if self.chat_templates:
            config["chat_template"] = [{"name": k, "template": v} for k, v in self.chat_templates.items()]
        (folder / "tokenizer_config.json").write_text(json.dumps(config, ensure_ascii=False, indent=1), encoding="utf-8")

    @classmethod
    def from_folder(cls, folder: str | Path) -> BPETokenizer:
        """Read a Hugging Face `tokenizer.json` of the byte-level BPE kind (see `is_byte_level_bpe`)."""
        folder = Path(folder)
        data = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
        if not is_byte_level_bpe(data):
            raise WorkbookError(f"{folder / 'tokenizer.json'} is not a plain byte-level BPE with GPT-2's pre-tokenizer.")
        model = data["model"]
        merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model["merges"]]
        special = {t["content"]: t["id"] for t in data.get("added_tokens", [])}
        vocab = {t: i for t, i in model["vocab"].items() if t not in special}
        config = _read_tokenizer_config(folder)
        return cls(vocab, merges, special, ignore_merges=bool(model.get("ignore_merges", False)),
                   chat_templates=config["chat_templates"], bos_token=config["bos_token"], eos_token=config["eos_token"])


def _merge(word: tuple[str, ...], pair: tuple[str, str]) -> tuple[str, ...]:
    """Join every occurrence of `pair` in `word`, left to right."""
    out, i = [], 0
    while i < len(word):
        if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
            out.append(word[i] + word[i + 1])
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


def is_byte_level_bpe(data: dict) -> bool:
    """Whether a tokenizer.json is the kind `BPETokenizer` reproduces exactly (GPT-2 style byte-level BPE)."""
    model, pre = data.get("model", {}), data.get("pre_tokenizer") or {}
    return (model.get("type") == "BPE" and data.get("normalizer") is None
            and pre.get("type") == "ByteLevel" and pre.get("use_regex", True) and not pre.get("add_prefix_space", False)
            and not model.get("byte_fallback") and not model.get("continuing_subword_prefix")
            and not model.get("end_of_word_suffix") and not model.get("dropout"))


def _read_tokenizer_config(folder: Path) -> dict:
    path = folder / "tokenizer_config.json"
    config = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}

    def token(value):  # a token is stored as a string or as {"content": ...}
        return value.get("content") if isinstance(value, dict) else value

    templates = config.get("chat_template") or {}
    if isinstance(templates, str):
        templates = {"default": templates}
    elif isinstance(templates, list):
        templates = {t["name"]: t["template"] for t in templates}
    jinja = folder / "chat_template.jinja"
    if not templates and jinja.is_file():
        templates = {"default": jinja.read_text(encoding="utf-8")}
    return {"chat_templates": templates, "bos_token": token(config.get("bos_token")), "eos_token": token(config.get("eos_token"))}


def render_chat(templates: dict[str, str], messages: list[dict], add_generation_prompt: bool, template: str | None,
                **variables) -> str:
    """Render messages with one of `templates`, in the same Jinja sandbox `transformers` uses."""
    from transformers.utils.chat_template_utils import render_jinja_template

    if not messages:
        raise EmptyInputError("No chat messages: give at least one {'role': ..., 'content': ...}.")
    name = template or "default"
    if name not in templates:
        raise WorkbookError(f"No chat template named {name!r}; this tokenizer has: {', '.join(templates) or 'none'}.")
    rendered, _ = render_jinja_template([messages], chat_template=templates[name],
                                        add_generation_prompt=add_generation_prompt, **variables)
    return rendered[0]


class HFTokenizer:
    """Adapter giving any `transformers` tokenizer the workbook's interface (for non-BPE checkpoints)."""

    def __init__(self, folder: Path):
        from transformers import AutoTokenizer

        self.hf = AutoTokenizer.from_pretrained(folder)
        config = _read_tokenizer_config(folder)
        self.chat_templates = config["chat_templates"]

    def encode(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise WorkbookError(f"encode() takes a str, not {type(text).__name__}.")
        return self.hf.encode(text, add_special_tokens=False)

    def decode(self, ids: Iterable[int]) -> str:
        return self.hf.decode(list(ids))

    def token_texts(self, ids: Iterable[int]) -> list[str]:
        return [self.hf.decode([i]) for i in ids]

    def apply_chat_template(self, messages: list[dict], *, add_generation_prompt: bool = True,
                            template: str | None = None, **variables) -> str:
        return render_chat(self.chat_templates, messages, add_generation_prompt, template,
                           bos_token=self.hf.bos_token or "", eos_token=self.hf.eos_token or "", **variables)

    def encode_chat(self, messages: list[dict], **kwargs) -> list[int]:
        return self.encode(self.apply_chat_template(messages, **kwargs))

    @property
    def vocab_size(self) -> int:
        return len(self.hf)

    @property
    def eos_token_id(self) -> int | None:
        return self.hf.eos_token_id

    @property
    def bos_token_id(self) -> int | None:
        return self.hf.bos_token_id


def load_tokenizer(name_or_path: str | Path, *, allow_download: bool = False) -> BPETokenizer | HFTokenizer:
    """The tokenizer of a checkpoint: our written-out BPE when the checkpoint's is byte-level BPE, else `transformers`'.

    A GGUF file (see `load_model`) gives our BPE, read from the file's metadata. A shipped model is never one, so
    its tokenizer loads without the GGUF reader (which imports torch).
    """
    if str(name_or_path) not in shipped_model_names():
        from .gguf_loader import gguf_file, tokenizer_from_gguf

        if (gguf := gguf_file(name_or_path)) is not None:
            return tokenizer_from_gguf(gguf)
    folder = resolve_checkpoint(name_or_path, allow_download=allow_download)
    path = folder / "tokenizer.json"
    if path.is_file() and is_byte_level_bpe(json.loads(path.read_text(encoding="utf-8"))):
        return BPETokenizer.from_folder(folder)
    return HFTokenizer(folder)
