"""One prepared run on a GPU: the equivalence tests on CUDA, then every timing at real models' sizes.

    PYTHONPATH=. python -m workbook.bench gpu            # on a machine with a CUDA GPU, from the repo root
    PYTHONPATH=. python -m workbook.bench gpu --dry-run  # the same steps on the CPU at toy sizes; saves nothing

1. The logits-equivalence tests marked `gpu` (float32 and bfloat16, our model against `transformers`),
   run by pytest on CUDA.
2. For each shipped shape (`workbook.shapes`: a real model's shape, random weights, bfloat16): time to first
   token cold and on a cached prefix at 2k, 8k and 32k-token prefixes (the longest that fits where the
   context is shorter), decode tokens/s after 2k tokens, and one target pass over k+1 tokens for k = 1..8,
   what speculative decoding's verification costs.

It needs only PyTorch, transformers, safetensors and pytest (no plotly, ipywidgets or jupyter), fits in a few
minutes on one GPU, and writes one file, `data/benchmarks/cuda-<device>.json` (section `gpu`).
"""

from __future__ import annotations

import random
import re
import statistics
import subprocess
import sys
from dataclasses import asdict

import torch

from ..engine import Engine
from ..errors import WorkbookError
from ..page_pool import full_pages
from ..paths import REPO_DIR
from ..shapes import RANDOM_WEIGHTS_NOTE, IdsTokenizer, random_ids, random_model, shape_names
from ..timing import device_name, save_results
from .prefix import PAGE_SIZE, shape_prefix_rows
from .speculative import shape_pass_costs

GPU_TESTS = ["tests/test_kv_quant.py", "tests/test_model.py", "tests/test_server.py", "tests/test_speculative.py",
             "tests/test_timing.py"]
PREFIX_LENGTHS = (2048, 8192, 32768)
SUFFIX = 32
KS = tuple(range(1, 9))
DECODE_CONTEXT, DECODE_TOKENS = 2048, 32


def add_arguments(parser) -> None:
    parser.add_argument("--dry-run", action="store_true",
                        help="run every step on the CPU at toy sizes (2 layers, short prefixes); save nothing")
    parser.add_argument("--shapes", nargs="+", choices=shape_names(), default=shape_names())
    parser.add_argument("--repeats", type=int, default=5)


def run(*, dry_run: bool = False, shapes=None, repeats: int = 5) -> dict:
    """Run both steps, print as it goes, and (unless `dry_run`) save everything as section `gpu`."""
    if not dry_run and not torch.cuda.is_available():
        raise WorkbookError("No CUDA GPU here. `python -m workbook.bench gpu --dry-run` runs the same steps on the CPU "
                            "at toy sizes.")
    device = "cpu" if dry_run else "cuda"
    import transformers

    print(f"{device_name(device)}; torch {torch.__version__}, transformers {transformers.__version__}")
    payload = {"device": device_name(device), "transformers_version": transformers.__version__,
               "equivalence_tests": run_gpu_tests(), "note": RANDOM_WEIGHTS_NOTE, "shapes": {}}
    for shape in shapes or shape_names():
        payload["shapes"][shape] = time_shape(shape, device, dry_run=dry_run, repeats=2 if dry_run else repeats)
    if dry_run:
        print("(--dry-run: toy sizes on the CPU; these numbers mean nothing and nothing was saved)")
    else:
        print(f"saved to {save_results('gpu', payload, device=device)}")
    return payload


def run_gpu_tests() -> dict:
    """pytest on the tests marked `gpu`, in a child process; its counts and the last lines it printed."""
    command = [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider",
               "-o", "addopts=", *GPU_TESTS]  # addopts names nbval, which a bare GPU machine lacks
    done = subprocess.run(command, cwd=REPO_DIR, capture_output=True, text=True)
    counts = {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|failed|skipped|error)", done.stdout)}
    print(f"equivalence tests on CUDA: {counts or 'none ran'}")
    return {"command": " ".join(command[1:]), "returncode": done.returncode, "counts": counts,
            "output_tail": done.stdout[-2000:]}


def fitting_lengths(context: int, lengths=PREFIX_LENGTHS) -> list[int]:
    """The prefix lengths asked for, each cut to the longest whole-page prefix that leaves room for the suffix
    and one new token within the model's context."""
    longest = full_pages(context - SUFFIX - 1, PAGE_SIZE) * PAGE_SIZE
    return sorted({min(n, longest) for n in lengths})


def time_shape(shape: str, device: str, *, dry_run: bool, repeats: int) -> dict:
    """Prefix TTFT, decode speed and pass costs for one shape, in bfloat16 on a GPU (float32 on the CPU)."""
    model = random_model(shape, device, torch.float32 if dry_run else torch.bfloat16, layers=2 if dry_run else None)
    lengths = [64, 128] if dry_run else fitting_lengths(model.config.max_position_embeddings)
    ks = KS[:2] if dry_run else KS
    rows = shape_prefix_rows(model, lengths, suffix=SUFFIX, repeats=repeats, warmup=1)
    context = min(lengths) if dry_run else DECODE_CONTEXT
    prompt = random_ids(random.Random(0), context, model.config.vocab_size)
    decode = Engine(model, IdsTokenizer()).generate(prompt, max_new_tokens=DECODE_TOKENS, stop_at_eos=False)
    pass_ms = shape_pass_costs(model, ks, context=context, repeats=repeats * 4)
    result = {"parameters": model.num_parameters(), "dtype": str(model.dtype), "layers": model.config.num_layers,
              "ttft": [{**asdict(r), "speedup": r.speedup} for r in rows],
              "decode_context": context, "decode_tokens_per_s": 1 / statistics.median(decode.timings.token_times_s),
              "pass_ms": pass_ms, "verify_ratio": {k: pass_ms[k + 1] / pass_ms[1] for k in ks}}
    print_shape(shape, result)
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    return result


def print_shape(shape: str, r: dict) -> None:
    print(f"\n{shape} ({r['parameters'] / 1e6:.0f}M parameters, {r['layers']} layers, {r['dtype']})")
    for row in r["ttft"]:
        print(f"  prefix {row['prefix_tokens']:>6}: cold {row['cold_s'] * 1e3:8.1f} ms, hit {row['hit_s'] * 1e3:7.1f} ms, "
              f"{row['speedup']:6.1f}x")
    print(f"  decode after {r['decode_context']} tokens: {r['decode_tokens_per_s']:.0f} tokens/s")
    print(f"  one pass: {r['pass_ms'][1]:.2f} ms for 1 token; over k+1 tokens, in one-token passes: "
          + ", ".join(f"k={k} {ratio:.2f}" for k, ratio in r["verify_ratio"].items()))
