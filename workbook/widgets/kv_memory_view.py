"""Lesson 9's KV memory calculator: a real model's cache per token, per sequence and per batch, beside its weights.

Pick a shipped model (data/configs/), a context length, a batch, the cache's and the weights' dtypes and a GPU's
memory; the view shows what one token costs and why (the formula with the model's numbers), what a sequence and
the batch cost, the weights, and how many sequences fit after them. A small table shows what GQA (or MLA), a
quantised cache and a shorter context buy. GPU memory is in GiB (2**30 bytes): an "80 GB" A100 or H100 reports about
80 GiB to CUDA (lesson 9, section 6, gives the source). The state lives in `view.state`, so tests move the controls
from Python.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import ipywidgets as W

from ..kv_memory import (DTYPE_BITS, KVMemory, attention_kind, format_bytes, head_dim, is_mla, kv_heads, kv_memory,
                         load_configs, multi_head_config)
from .style import ErrorBox

GIB = 1024**3
GPU_GIB = [24, 40, 48, 80, 141]
WIDE = {"description_width": "10em"}


@dataclass(frozen=True)
class Option:
    """One row of the what-buys-what table: a change to the chosen setup and the memory it leads to."""

    change: str
    memory: KVMemory
    sequences: int  # sequences of its context that fit after the weights


@dataclass
class KVMemoryState:
    """What the controls say, and what the view computed from them (or why it could not)."""

    model: str = "llama-3-8b"
    context_tokens: int = 8_192
    batch: int = 1
    kv_dtype: str = "bfloat16"
    weight_dtype: str = "bfloat16"
    gpu_gib: int = 80
    memory: KVMemory | None = None
    sequences: int | None = None  # sequences that fit in the GPU after the weights
    options: list[Option] = field(default_factory=list)
    error: str = ""


class KVMemoryView:
    """Controls for model, context, batch, dtypes and GPU; below them the memory, and what each saving buys."""

    def __init__(self, state: KVMemoryState | None = None, *, configs: dict[str, dict] | None = None):
        self.configs = load_configs() if configs is None else configs
        self.state = state or KVMemoryState()
        self._build()
        self.update()

    def update(self) -> None:
        """Read the controls, recompute and redraw; a bad input is shown in the error box, not raised."""
        s = self.state
        s.model, s.context_tokens, s.batch = self.model_picker.value, self.context_box.value, self.batch_box.value
        s.kv_dtype, s.weight_dtype, s.gpu_gib = self.kv_picker.value, self.weight_picker.value, self.gpu_picker.value
        config = self.configs[s.model]
        computed = self.errors.attempt(lambda: compute(config, s))
        s.error = self.errors.message
        s.memory, s.sequences, s.options = computed or (None, None, [])
        self.summary.value = "" if computed is None else summary_html(config, s)

    def _build(self) -> None:
        s = self.state
        self.model_picker = W.Dropdown(options=[(c.get("model", key), key) for key, c in self.configs.items()],
                                       value=s.model, description="Model", style=WIDE)
        self.context_box = W.IntText(value=s.context_tokens, description="Context tokens", style=WIDE)
        self.batch_box = W.IntText(value=s.batch, description="Sequences (batch)", style=WIDE)
        self.kv_picker = W.Dropdown(options=list(DTYPE_BITS), value=s.kv_dtype, description="KV dtype", style=WIDE)
        self.weight_picker = W.Dropdown(options=list(DTYPE_BITS), value=s.weight_dtype, description="Weight dtype",
                                        style=WIDE)
        self.gpu_picker = W.Dropdown(options=[(f"{g} GiB", g) for g in sorted({*GPU_GIB, s.gpu_gib})],
                                     value=s.gpu_gib, description="GPU memory", style=WIDE)
        for control in (self.model_picker, self.context_box, self.batch_box, self.kv_picker, self.weight_picker,
                        self.gpu_picker):
            control.observe(lambda _: self.update(), names="value")
        self.errors = ErrorBox()
        self.summary = W.HTML()
        self.widget = W.VBox([
            W.HTML("<b>KV memory at real scale.</b> Every token a model has read keeps its K and V rows in every "
                   "layer. Pick a model and a workload: what does its cache cost, and how many sequences fit on one "
                   "GPU beside the weights?"),
            W.HBox([W.VBox([self.model_picker, self.context_box, self.batch_box]),
                    W.VBox([self.kv_picker, self.weight_picker, self.gpu_picker])]),
            self.errors.widget, self.summary,
        ])


def compute(config: dict, s: KVMemoryState) -> tuple[KVMemory, int, list[Option]]:
    """The chosen setup's memory, the sequences that fit beside the weights, and the what-buys-what rows."""
    memory = kv_memory(config, s.context_tokens, s.batch, s.kv_dtype, s.weight_dtype)
    return memory, memory.sequences_that_fit(s.gpu_gib * GIB), options(config, s)


def options(config: dict, s: KVMemoryState) -> list[Option]:
    """The chosen setup, then one change at a time: no K/V sharing, a quantised cache, half the context.

    The weights stay as they are in every row, so each row shows what its change does to the cache alone.
    """
    def option(change: str, shape: dict = config, context: int = s.context_tokens, kv_dtype: str = s.kv_dtype):
        memory = kv_memory({**shape, "num_parameters": config.get("num_parameters")}, context, s.batch, kv_dtype,
                           s.weight_dtype)
        return Option(change, memory, memory.sequences_that_fit(s.gpu_gib * GIB))

    kind = attention_kind(config)
    sharing = {"MHA": "Multi-head already: no K/V sharing to undo", "MLA": "Without MLA: a K and a V per head"}.get(
        kind, f"Without {kind}: {config['num_attention_heads']} K/V heads, not {kv_heads(config)}")
    half = max(1, s.context_tokens // 2)
    return [option(f"As chosen ({s.kv_dtype} cache)"), option(sharing, shape=multi_head_config(config)),
            option("Cache in fp8 or int8", kv_dtype="fp8"), option("Cache in int4", kv_dtype="int4"),
            option(f"Half the context ({half:,} tokens)", context=half)]


def summary_html(config: dict, s: KVMemoryState) -> str:
    """The memory of the chosen setup as a small table, then the what-buys-what table."""
    m = s.memory
    gpu = s.gpu_gib * GIB
    weights = f"{format_bytes(m.weight_bytes)} ({config['num_parameters']:,} parameters in {m.weight_dtype})"
    if m.weight_bytes > gpu:
        fit = f"none: the weights alone ({format_bytes(m.weight_bytes)}) do not fit in {s.gpu_gib} GiB"
    else:
        fit = (f"{s.sequences:,} sequences of {m.context_tokens:,} tokens in the "
               f"{format_bytes(gpu - m.weight_bytes)} the weights leave")
    batch_verdict = "fits" if m.weight_bytes + m.total_bytes <= gpu else "does not fit"
    rows = [
        ("Attention", attention_text(config)),
        ("Per token", f"{m.bytes_per_token:,} bytes ({format_bytes(m.bytes_per_token)}) = {formula(config, m)}"),
        ("Per sequence", f"{format_bytes(m.per_sequence_bytes)} at {m.context_tokens:,} tokens"),
        ("The batch", f"{format_bytes(m.total_bytes)} for {m.batch:,} sequence{'s' if m.batch != 1 else ''}; with "
                      f"the weights it {batch_verdict} in {s.gpu_gib} GiB"),
        ("Weights", weights),
        ("Sequences that fit", fit),
    ]
    limit = config.get("max_position_embeddings")
    if limit is not None and m.context_tokens > limit:
        rows.append(("Note", f"{m.context_tokens:,} tokens is beyond this model's max_position_embeddings "
                             f"({limit:,}); the arithmetic holds, the model was not made to read that far."))
    window = config.get("sliding_window")
    if window is not None and m.context_tokens > window:
        rows.append(("Sliding window", f"this model attends only to the last {window:,} tokens, so a server with a "
                                       f"rolling buffer keeps {format_bytes(m.bytes_per_token * window)} per sequence; "
                                       "the rows above count every token, as a full cache does"))
    return (table_html(rows) + "<b>What each change buys</b>"
            + table_html([(o.change, format_bytes(o.memory.bytes_per_token), format_bytes(o.memory.per_sequence_bytes),
                           f"{o.memory.per_sequence_bytes / m.per_sequence_bytes:.2f}×", f"{o.sequences:,}")
                          for o in s.options],
                         columns=["Change", "Per token", "Per sequence", "Cache vs now", "Sequences that fit"])
            + "<p><i>Counts the cached values only: a quantised cache also keeps scales, and a server keeps memory "
              "for activations and its own use, so it fits somewhat fewer sequences.</i></p>")


def attention_text(config: dict) -> str:
    kind, heads = attention_kind(config), config["num_attention_heads"]
    if kind == "MLA":
        return (f"MLA: {heads} query heads read one latent of {config['kv_lora_rank']} values and one RoPE key of "
                f"{config['qk_rope_head_dim']} per layer")
    return f"{kind}: {heads} query heads, {kv_heads(config)} K/V heads of {head_dim(config)} values"


def formula(config: dict, m: KVMemory) -> str:
    """The per-token arithmetic with this model's numbers, e.g. '2 (K and V) × 32 layers × 8 K/V heads × ...'."""
    bits = DTYPE_BITS[m.kv_dtype]
    size = {4: "½ byte", 2: "¼ byte", 8: "1 byte"}.get(bits, f"{bits // 8} bytes")
    layers = f"{config['num_hidden_layers']} layers"
    if is_mla(config):
        return f"{layers} × ({config['kv_lora_rank']} + {config['qk_rope_head_dim']}) values × {size}"
    return f"2 (K and V) × {layers} × {kv_heads(config)} K/V heads × {head_dim(config)} values × {size}"


def table_html(rows: list[tuple], columns: list[str] | None = None) -> str:
    """A plain table, each row's first cell as its heading; `columns` adds a header row."""
    def cells(tag: str, values) -> str:
        return "".join(f"<{tag} style='text-align:left;padding-right:1em'>{html.escape(v, quote=False)}</{tag}>"
                       for v in values)

    head = "" if columns is None else f"<tr>{cells('th', columns)}</tr>"
    body = "".join(f"<tr>{cells('th', [first])}{cells('td', rest)}</tr>" for first, *rest in rows)
    return f'<table class="wb-kv-memory">{head}{body}</table>'
