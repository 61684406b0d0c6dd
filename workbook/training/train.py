"""Train the shipped models: a byte-level BPE tokenizer, the target `tiny` and the draft `tiny-draft`.

One seeded command builds the corpus, trains the tokenizer, the target, then the draft (partly
distilled from the target), measures them after the float16 round trip and writes the model
card figures:

    python -m workbook.training.train --out data/models --seed 0 [--minutes 45]

Scratch files (corpus, token ids, checkpoints) go to data/train_runs/, which git ignores. A
stopped run picks up from its last checkpoint when started again with the same arguments.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from tqdm import tqdm
from transformers import LlamaConfig, LlamaForCausalLM

from workbook.training import corpus
from workbook.paths import DATA_DIR
from workbook.timing import cpu_model_name

HELDOUT_PATH = DATA_DIR / "corpus" / "heldout.txt"
WORK_DIR = DATA_DIR / "train_runs"
VOCAB_SIZE = 4096
CONTEXT = 256  # training and evaluation window, in tokens
MAX_POSITIONS = 8192  # RoPE has no position table; quality past CONTEXT is not claimed


# --- tokenizer ------------------------------------------------------------------------------


def train_tokenizer(text: str, vocab_size: int = VOCAB_SIZE) -> Tokenizer:
    """Byte-level BPE (GPT-2 style) learned from `text`, with the chat format's special tokens."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=corpus.SPECIAL_TOKENS,
        show_progress=False,
    )
    # Special tokens are whole tokens, never merged with text: cut them out before counting pairs.
    pattern = "|".join(re.escape(t) for t in corpus.SPECIAL_TOKENS)
    pieces = (piece for doc in text.split(corpus.BOS) for piece in re.split(pattern, doc) if piece)
    tokenizer.train_from_iterator(pieces, trainer=trainer)
    return tokenizer


def save_tokenizer(tokenizer: Tokenizer, folder: Path) -> None:
    """tokenizer.json plus a tokenizer_config.json that transformers reads, with both chat templates."""
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": corpus.BOS,
        "eos_token": corpus.END,  # generation of an assistant turn stops here
        "pad_token": corpus.BOS,
        "model_max_length": MAX_POSITIONS,
        "clean_up_tokenization_spaces": False,
        "chat_template": [
            {"name": "default", "template": corpus.CHAT_TEMPLATE},
            {"name": "dated", "template": corpus.DATED_CHAT_TEMPLATE},
        ],
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def encode(tokenizer: Tokenizer, text: str) -> np.ndarray:
    """Token ids of a long text as uint16, encoded one document at a time (fast, same ids)."""
    docs = [corpus.BOS + d for d in text.split(corpus.BOS) if d]
    ids = [i for enc in tokenizer.encode_batch(docs) for i in enc.ids]
    return np.array(ids, dtype=np.uint16)


# --- models ---------------------------------------------------------------------------------


@dataclass
class ModelSpec:
    """Shape and training recipe of one shipped model."""

    name: str
    layers: int
    width: int
    heads: int
    kv_heads: int
    intermediate: int
    lr: float
    steps: int
    batch: int = 16
    distill: float = 0.0  # weight of the KL term to the target's distribution (draft only)


TARGET = ModelSpec("tiny", layers=6, width=384, heads=6, kv_heads=2, intermediate=1024, lr=1.5e-3, steps=1500)
DRAFT = ModelSpec("tiny-draft", layers=2, width=128, heads=2, kv_heads=1, intermediate=384, lr=3e-3, steps=1000,
                  distill=0.5)


def llama_config(spec: ModelSpec, tokenizer: Tokenizer) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=spec.width,
        intermediate_size=spec.intermediate,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        num_key_value_heads=spec.kv_heads,  # grouped-query attention
        max_position_embeddings=MAX_POSITIONS,
        rope_theta=10000.0,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.token_to_id(corpus.BOS),
        eos_token_id=tokenizer.token_to_id(corpus.END),
        pad_token_id=tokenizer.token_to_id(corpus.BOS),
    )


def batch_at(ids: np.ndarray, step: int, batch: int, seed: int) -> torch.Tensor:
    """Random windows of CONTEXT + 1 tokens; seeded by step, so a resumed run sees the same data."""
    rng = np.random.default_rng([seed, step])
    starts = rng.integers(0, len(ids) - CONTEXT - 1, size=batch)
    return torch.from_numpy(np.stack([ids[s : s + CONTEXT + 1] for s in starts]).astype(np.int64))


def learning_rate(spec: ModelSpec, step: int) -> float:
    """Linear warm-up, then cosine decay to a tenth of the peak."""
    warmup = min(100, spec.steps // 10)
    if step < warmup:
        return spec.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, spec.steps - warmup)
    return spec.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


class ThreadTuner:
    """Picks how many CPU threads to train with, by measured step time, re-checked now and then.

    On a shared machine a busy core makes a multi-threaded step wait at every synchronisation
    point; measured here, one thread then ran a step 4-5x faster than two. When the machine is
    idle, all threads win. Thread count changes only the order of float additions.
    """

    def __init__(self, every: int = 200, probe: int = 3):
        self.choices = sorted({1, os.cpu_count() or 1})
        self.every, self.probe = every, probe
        self.times = {c: [] for c in self.choices}

    def threads_for(self, step: int) -> int:
        """Probe each choice for a few steps at the start of every period, then use the fastest."""
        phase = step % self.every
        if phase < self.probe * len(self.choices):
            return self.choices[phase // self.probe]
        return min(self.choices, key=lambda c: min(self.times[c][-self.probe :], default=math.inf))

    def record(self, threads: int, seconds: float) -> None:
        self.times[threads].append(seconds)


def logits_of(model, input_ids: torch.Tensor) -> torch.Tensor:
    """Logits from a transformers model (an output object) or the workbook's (a tensor)."""
    out = model(input_ids)
    return getattr(out, "logits", out)


def train_model(spec: ModelSpec, config: LlamaConfig, ids: np.ndarray, seed: int, run_dir: Path,
                teacher: LlamaForCausalLM | None = None) -> tuple[LlamaForCausalLM, dict]:
    """Train one model with AdamW under bfloat16 autocast, checkpointing so a stopped run resumes."""
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                                  lr=spec.lr, betas=(0.9, 0.95))
    run_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = run_dir / (f"{spec.name}-distill{spec.distill}.pt" if spec.distill else f"{spec.name}.pt")
    state = {"step": 0, "seconds": 0.0, "losses": []}
    if checkpoint.exists():
        saved = torch.load(checkpoint, weights_only=False)
        if saved["spec"] == asdict(spec):
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            state = saved["state"]
    model.train()
    # CPUs with bfloat16 matrix units (AMX, AVX512-BF16) run autocast about 3x faster than float32.
    autocast = torch.autocast(model.device.type, dtype=torch.bfloat16)
    tuner = ThreadTuner()
    bar = tqdm(range(state["step"], spec.steps), initial=state["step"], total=spec.steps, desc=spec.name)
    for step in bar:
        threads = tuner.threads_for(step)
        torch.set_num_threads(threads)
        started = time.perf_counter()
        batch = batch_at(ids, step, spec.batch, seed)
        inputs, targets = batch[:, :-1], batch[:, 1:]
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(spec, step)
        with autocast:
            logits = logits_of(model, inputs).float()
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        if teacher is not None and spec.distill:
            with torch.no_grad(), autocast:
                teacher_logits = logits_of(teacher, inputs).float()
            # KL(teacher || draft): the draft learns the target's whole distribution, not just the next token.
            kl = F.kl_div(F.log_softmax(logits, -1), F.log_softmax(teacher_logits, -1), log_target=True,
                          reduction="batchmean") / inputs.shape[1]
            total = (1 - spec.distill) * loss + spec.distill * kl
        else:
            total = loss
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        state["step"] = step + 1
        seconds = time.perf_counter() - started
        tuner.record(threads, seconds)
        state["seconds"] += seconds
        state["losses"].append(round(loss.item(), 4))
        bar.set_postfix(loss=f"{loss.item():.3f}", threads=threads)
        if state["step"] % 200 == 0 or state["step"] == spec.steps:
            torch.save({"spec": asdict(spec), "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "state": state}, checkpoint)
    model.eval()
    return model, state


# --- measurements ---------------------------------------------------------------------------


def heldout_ids(tokenizer_or_ids, path: Path = HELDOUT_PATH) -> torch.Tensor:
    """The held-out token ids: given directly, or data/corpus/heldout.txt encoded by the tokenizer."""
    if isinstance(tokenizer_or_ids, (list, np.ndarray, torch.Tensor)):
        return torch.as_tensor(np.asarray(tokenizer_or_ids), dtype=torch.long).flatten()
    encoded = tokenizer_or_ids.encode(path.read_text(encoding="utf-8"))
    return torch.tensor(getattr(encoded, "ids", encoded), dtype=torch.long)  # tokenizers.Encoding or list


def heldout_windows(ids: torch.Tensor, window: int = CONTEXT) -> torch.Tensor:
    """Non-overlapping windows of `window` tokens; the last, shorter remainder is dropped."""
    count = len(ids) // window
    return ids[: count * window].view(count, window)


@torch.no_grad()
def heldout_loss(model, tokenizer_or_ids, window: int = CONTEXT, batch: int = 16) -> float:
    """Mean next-token cross-entropy (nats) on the held-out text, the figure the model card reports.

    The procedure, exactly: encode data/corpus/heldout.txt (special tokens written in it are
    recognised), cut the ids into non-overlapping `window`-token windows dropping the remainder,
    run each window from an empty cache in float32, and average the loss of predicting tokens
    2..window of each window from the ones before it, over all windows.
    """
    windows = heldout_windows(heldout_ids(tokenizer_or_ids), window)
    total, count = 0.0, 0
    for chunk in windows.split(batch):
        logits = logits_of(model, chunk).float()
        total += F.cross_entropy(logits[:, :-1].flatten(0, 1), chunk[:, 1:].flatten(), reduction="sum").item()
        count += chunk[:, 1:].numel()
    return total / count


@torch.no_grad()
def greedy_agreement(draft, target, tokenizer_or_ids, window: int = CONTEXT, batch: int = 16) -> float:
    """Fraction of held-out positions where the draft's argmax equals the target's (same windows as heldout_loss)."""
    windows = heldout_windows(heldout_ids(tokenizer_or_ids), window)
    agree, count = 0, 0
    for chunk in windows.split(batch):
        same = logits_of(draft, chunk).argmax(-1) == logits_of(target, chunk).argmax(-1)
        agree += same.sum().item()
        count += same.numel()
    return agree / count


LESSON_PROMPTS = [
    [{"role": "system", "content": "You are a friendly customer support assistant for Lumen Books, an online shop."},
     {"role": "user", "content": "Hi, where is my order A12345?"}],
    [{"role": "system", "content": "You are a helpful Python coding assistant. Answer with short explanations and small, correct code examples."},
     {"role": "user", "content": "How do I read a file line by line?"}],
    [{"role": "system", "content": "You are a travel planning assistant for a booking website."},
     {"role": "user", "content": "I have 3 days in Lisbon. Can you suggest a simple plan?"}],
]
TEXT_PROMPTS = ["Module json\n\n", "The for statement is used to"]


def sample_prompts() -> list[str]:
    """Lesson-style prompts as text: chats rendered with the default template, then plain text."""
    return [corpus.render_chat(m, add_generation_prompt=True) for m in LESSON_PROMPTS] + \
        [corpus.BOS + p for p in TEXT_PROMPTS]


@torch.no_grad()
def greedy_samples(model: LlamaForCausalLM, tokenizer: Tokenizer, new_tokens: int = 60) -> list[dict]:
    """Greedy continuations of the lesson-style prompts, stopping at <|end|> or <|endoftext|>."""
    stops = {tokenizer.token_to_id(corpus.END), tokenizer.token_to_id(corpus.BOS)}
    samples = []
    for prompt in sample_prompts():
        ids = tokenizer.encode(prompt).ids
        out = []
        for _ in range(new_tokens):  # plain loop: no cache needed at this size, and no generate() defaults
            nxt = int(logits_of(model, torch.tensor([ids + out]))[0, -1].argmax())
            out.append(nxt)
            if nxt in stops:
                break
        samples.append({"prompt": prompt, "completion": tokenizer.decode(out, skip_special_tokens=False)})
    return samples


def save_float16(model: LlamaForCausalLM, folder: Path) -> LlamaForCausalLM:
    """Save in float16 (safetensors) and load it back in float32: what users will run."""
    folder.mkdir(parents=True, exist_ok=True)
    model.to(torch.float16).save_pretrained(folder, safe_serialization=True)
    model.to(torch.float32)
    shutil.copy(WORK_DIR / "tokenizer" / "tokenizer.json", folder)
    shutil.copy(WORK_DIR / "tokenizer" / "tokenizer_config.json", folder)
    return LlamaForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()


# --- the command ----------------------------------------------------------------------------


def prepare_data(seed: int) -> tuple[Tokenizer, np.ndarray]:
    """Corpus and tokenizer (built once and kept under data/train_runs/), and the train token ids."""
    corpus_dir, tok_dir = WORK_DIR / "corpus", WORK_DIR / "tokenizer"
    if not (corpus_dir / "train.txt").exists():
        train, heldout = corpus.build(seed)
        corpus_dir.mkdir(parents=True, exist_ok=True)
        (corpus_dir / "train.txt").write_text(train, encoding="utf-8")
        (corpus_dir / "heldout.txt").write_text(heldout, encoding="utf-8")
    if not HELDOUT_PATH.exists():  # shipped, because the docs in it depend on the Python version
        HELDOUT_PATH.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(corpus_dir / "heldout.txt", HELDOUT_PATH)
    train_text = (corpus_dir / "train.txt").read_text(encoding="utf-8")
    if not (tok_dir / "tokenizer.json").exists():
        save_tokenizer(train_tokenizer(train_text), tok_dir)
    tokenizer = Tokenizer.from_file(str(tok_dir / "tokenizer.json"))
    ids_path = WORK_DIR / "train_ids.npy"
    if not ids_path.exists():
        np.save(ids_path, encode(tokenizer, train_text))
    return tokenizer, np.load(ids_path)


def steps_for(spec: ModelSpec, config: LlamaConfig, ids: np.ndarray, minutes: float, teacher=None) -> int:
    """How many steps fit in `minutes` on this machine, from the mean time of a few probe steps."""
    probe = ModelSpec(**{**asdict(spec), "name": spec.name + "-probe", "steps": 6})
    probe_dir = WORK_DIR / "probe"
    probe_dir.mkdir(parents=True, exist_ok=True)
    _, state = train_model(probe, config, ids, 0, probe_dir, teacher)
    shutil.rmtree(probe_dir)
    per_step = state["seconds"] / probe.steps
    return max(50, int(minutes * 60 / per_step))


def record(spec: ModelSpec, model, state: dict, tokenizer: Tokenizer, seed: int, extra: dict) -> dict:
    """The measured figures of one trained model, after the float16 round trip."""
    loss = heldout_loss(model, tokenizer)
    return {
        "name": spec.name,
        "parameters": model.num_parameters(),
        "shape": asdict(spec),
        "seed": seed,
        "context": CONTEXT,
        "training_tokens": state["step"] * spec.batch * CONTEXT,
        "steps": state["step"],
        "train_seconds": round(state["seconds"], 1),
        "device": cpu_model_name(),
        "cpu_threads": f"1 or {os.cpu_count()}, whichever stepped faster (ThreadTuner); the machine was shared",
        "precision": "bfloat16 autocast, float32 master weights; stored float16",
        "final_train_loss_mean_last_50": round(float(np.mean(state["losses"][-50:])), 4),
        "heldout_loss": round(loss, 4),
        "heldout_perplexity": round(math.exp(loss), 3),
        "heldout_procedure": "workbook.training.train.heldout_loss: data/corpus/heldout.txt, non-overlapping 256-token windows, float32",
        "heldout_tokens": len(heldout_ids(tokenizer)),
        "torch": torch.__version__,
        **extra,
    }


def write_model_card(out: Path, target: dict, draft: dict) -> None:
    """data/models/README.md: every figure in it comes from the two records just measured."""
    def row(label: str, key, fmt="{}") -> str:
        values = [fmt.format(key(r) if callable(key) else r[key]) for r in (target, draft)]
        return f"| {label} | {values[0]} | {values[1]} |"

    shape = lambda r: f"{r['shape']['layers']} x {r['shape']['width']}"  # noqa: E731
    heads = lambda r: f"{r['shape']['heads']} query / {r['shape']['kv_heads']} key-value"  # noqa: E731
    minutes = lambda r: f"{r['train_seconds'] / 60:.1f} min"  # noqa: E731
    recipe = lambda r: "next-token loss" if not r["shape"]["distill"] else \
        f"{1 - r['shape']['distill']:g} x next-token + {r['shape']['distill']:g} x KL to `tiny`"  # noqa: E731
    lines = [
        "# The shipped models: `tiny` and `tiny-draft`",
        "",
        "Two small Llama-family language models (transformers `LlamaForCausalLM`) trained for this workbook, so",
        "every lesson runs offline on a laptop CPU: `tiny` is the model the lessons run, `tiny-draft` is its draft",
        "for speculative decoding. They share one byte-level BPE tokenizer (4,096 tokens, chat special tokens).",
        "They are teaching models: they write text in the style of their corpus and make things up freely.",
        "",
        "| | `tiny` (target) | `tiny-draft` |",
        "|---|---|---|",
        row("parameters (tied embeddings counted once)", "parameters", "{:,}"),
        row("layers x width", shape),
        row("attention heads", heads),
        row("MLP width (SwiGLU)", lambda r: r["shape"]["intermediate"]),
        row("training objective", recipe),
        row("training tokens", "training_tokens", "{:,}"),
        row("steps x batch x context", lambda r: f"{r['steps']:,} x {r['shape']['batch']} x {r['context']}"),
        row("peak learning rate (AdamW, cosine)", lambda r: r["shape"]["lr"]),
        row("training time (wall clock; the draft's includes running `tiny` for its logits)", minutes),
        row("held-out loss (nats/token)", "heldout_loss"),
        row("held-out perplexity", "heldout_perplexity"),
        "",
        f"Trained on {target['device']} (CPU only; bfloat16 autocast with float32 master weights, "
        f"torch {target['torch']}), seed {target['seed']}, on a machine shared with other work, so wall time",
        "is an upper bound. Weights are stored in float16 (safetensors); load them in float32.",
        "",
        f"**Draft agreement.** On the held-out text, `tiny-draft`'s most likely next token equals `tiny`'s at "
        f"{draft['greedy_agreement_with_tiny']:.1%} of positions",
        f"(greedy agreement; `tiny` has {draft['parameter_ratio_tiny_over_draft']}x the draft's parameters).",
    ]
    if "without_distillation" in draft:
        plain = draft["without_distillation"]
        lines += [f"Trained the same way without the target's logits, the draft agreed at "
                  f"{plain['greedy_agreement_with_tiny']:.1%} (held-out loss {plain['heldout_loss']}, "
                  f"{plain['train_seconds'] / 60:.1f} min)."]
    lines += [
        "",
        "**Held-out loss**, exactly (`workbook.training.train.heldout_loss`): `data/corpus/heldout.txt` "
        f"({target['heldout_tokens']:,} tokens: Python docs",
        "and generated chats kept out of training) is encoded with special tokens recognised, cut into",
        f"non-overlapping {target['context']}-token windows (the remainder dropped), each run from an empty "
        "cache in float32 after",
        "the float16 round trip, and the next-token cross-entropy averaged over every predicted position.",
        "",
        f"**Context.** Both were trained on {target['context']}-token windows. `max_position_embeddings` is 8,192 so",
        "benchmarks can run long prompts (RoPE has no position table), but quality past the training context is",
        "not claimed.",
        "",
        "## Samples",
        "",
        "Greedy continuations (at most 60 tokens, stopping at `<|end|>`) of lesson-style prompts; chat prompts",
        "are rendered with the default chat template. The chats read well (the facts are invented); documentation",
        "prose is beyond models this small, and greedy decoding of it soon repeats itself.",
        "",
    ]
    for t, d in zip(target["samples"], draft["samples"]):
        lines += ["```text", t["prompt"].rstrip("\n"), "```", "", f"`tiny`: {json.dumps(t['completion'])}", "",
                  f"`tiny-draft`: {json.dumps(d['completion'])}", ""]
    lines += [
        "## How they were made",
        "",
        "```bash",
        f"python -m workbook.training.train --out data/models --seed {target['seed']} --target-steps {target['steps']} "
        f"--draft-steps {draft['steps']}" + (" --compare-distill" if "without_distillation" in draft else ""),
        "```",
        "",
        "builds the corpus (`workbook.training.corpus`: Python's own documentation plus generated assistant chats with",
        "system prompts, tool schemas and policies), trains the tokenizer with the Hugging Face `tokenizers`",
        "library, then the target, then the draft, and writes `training.json` (every figure above) next to each",
        "model and this card. See `data/README.md` for provenance and licences.",
        "",
        "Chat format (`tokenizer_config.json` holds it as two Jinja templates, `default` and `dated`; `dated`",
        "stamps today's date at the top of the system turn, like Llama 3.2's template):",
        "",
        "```text",
        corpus.render_chat([{"role": "system", "content": "SYSTEM"}, {"role": "user", "content": "USER"},
                            {"role": "assistant", "content": "ASSISTANT"}]).rstrip("\n"),
        "```",
        "",
    ]
    (out / "README.md").write_text("\n".join(lines), encoding="utf-8")


def train_draft(spec: ModelSpec, tokenizer: Tokenizer, ids: np.ndarray, seed: int, target,
                folder: Path) -> tuple[LlamaForCausalLM, dict]:
    """Train a draft (distilled from `target` when spec.distill > 0), save it, and measure it."""
    draft, state = train_model(spec, llama_config(spec, tokenizer), ids, seed, WORK_DIR / f"seed{seed}", teacher=target)
    draft = save_float16(draft, folder)
    agreement = greedy_agreement(draft, target, tokenizer)
    return draft, record(spec, draft, state, tokenizer, seed, {
        "greedy_agreement_with_tiny": round(agreement, 4),
        "parameter_ratio_tiny_over_draft": round(target.num_parameters() / draft.num_parameters(), 2),
    })


def main() -> None:
    parser = argparse.ArgumentParser(description="Train the shipped tokenizer, target and draft models.")
    parser.add_argument("--out", type=Path, default=DATA_DIR / "models")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--minutes", type=float, help="time budget of the target: sets its steps from a timed probe")
    parser.add_argument("--draft-minutes", type=float, help="time budget of the draft, likewise")
    parser.add_argument("--target-steps", type=int, default=TARGET.steps)
    parser.add_argument("--draft-steps", type=int, default=DRAFT.steps)
    parser.add_argument("--distill", type=float, default=DRAFT.distill, help="weight of the KL term for the draft")
    parser.add_argument("--compare-distill", action="store_true",
                        help="also train a draft without distillation and record how it compares")
    args = parser.parse_args()

    tokenizer, ids = prepare_data(args.seed)
    print(f"train tokens: {len(ids):,}")

    target_config = llama_config(TARGET, tokenizer)
    target_steps = steps_for(TARGET, target_config, ids, args.minutes) if args.minutes else args.target_steps
    target_spec = ModelSpec(**{**asdict(TARGET), "steps": target_steps})
    target, target_state = train_model(target_spec, target_config, ids, args.seed, WORK_DIR / f"seed{args.seed}")
    target = save_float16(target, args.out / "tiny")
    target_record = record(target_spec, target, target_state, tokenizer, args.seed, {"corpus_train_tokens": len(ids)})
    target_record["samples"] = greedy_samples(target, tokenizer)

    draft_spec = ModelSpec(**{**asdict(DRAFT), "distill": args.distill, "steps": args.draft_steps})
    if args.draft_minutes:
        draft_spec.steps = steps_for(draft_spec, llama_config(DRAFT, tokenizer), ids, args.draft_minutes, target)
    draft, draft_record = train_draft(draft_spec, tokenizer, ids, args.seed, target, args.out / "tiny-draft")
    if args.compare_distill:  # same recipe without the target's logits, kept out of data/models
        plain_spec = ModelSpec(**{**asdict(draft_spec), "distill": 0.0})
        _, plain = train_draft(plain_spec, tokenizer, ids, args.seed, target, WORK_DIR / "tiny-draft-no-distill")
        draft_record["without_distillation"] = {k: plain[k] for k in ("heldout_loss", "heldout_perplexity",
                                                                      "greedy_agreement_with_tiny", "train_seconds")}
    draft_record["samples"] = greedy_samples(draft, tokenizer)

    for rec in (target_record, draft_record):
        (args.out / rec["name"] / "training.json").write_text(json.dumps(rec, indent=2) + "\n", encoding="utf-8")
        print(f"{rec['name']}: {rec['parameters']:,} params, held-out loss {rec['heldout_loss']}, "
              f"perplexity {rec['heldout_perplexity']}")
    print(f"greedy agreement draft/target: {draft_record['greedy_agreement_with_tiny']:.3f}")
    write_model_card(args.out, target_record, draft_record)


if __name__ == "__main__":
    main()
