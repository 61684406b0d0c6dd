"""Shared test setup: no network, small random checkpoints of every supported family."""

import os
import socket

# Set before transformers / huggingface_hub are imported anywhere, so nothing tries the hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

from workbook.timing import usable_cores  # noqa: E402

_real_connect = socket.socket.connect

# `make test` runs the suite on several workers (pytest-xdist, `-n auto`), each about one core's worth of work: a
# worker's models, and the lesson kernels and servers it starts (they inherit OMP_NUM_THREADS), use one thread, so
# two workers on a 2-core laptop keep both cores busy without fighting over them.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)

MAX_WORKERS = 4  # beyond four, each worker's JupyterLab, browser and models cost more memory than they save time


def pytest_xdist_auto_num_workers(config):
    """`-n auto`: one worker per core this process may use, at most MAX_WORKERS."""
    cores = usable_cores()
    return max(1, min(cores, MAX_WORKERS))


def pytest_configure(config):
    """Under `--dist load` (`-n` alone means it too), deal the tests out one at a time. By default pytest-xdist first
    sends each worker a quarter of its share of the tests, in their order: every lesson would go to one worker, which
    ran them one after another for eleven minutes while the other finished the rest in six and sat idle."""
    if getattr(config.option, "maxschedchunk", "no xdist") is None:
        config.option.maxschedchunk = 1


def pytest_collection_modifyitems(config, items):
    """The tests marked runs_long (each lesson's one run) first, longest first, the rest in their usual order. Dealt
    out one at a time (`pytest_configure`), the long ones are spread over the workers and started at once, and the
    short ones fill the gaps: the workers finish at about the same time."""
    def seconds(item):
        marker = item.get_closest_marker("runs_long")
        return marker.args[0] if marker else 0.0
    items.sort(key=seconds, reverse=True)  # stable: the others keep their order


def _loopback_only(self, address):
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, str) and host not in ("localhost", "::1") and not host.startswith("127.") and "/" not in host:
        raise RuntimeError(f"Tests must not reach the network (tried {address}).")
    return _real_connect(self, address)


def pytest_addoption(parser):
    parser.addoption("--record-lesson-seconds", action="store_true",
                     help="write each lesson's run time, as tests/test_browser.py measured it, to "
                          "tests/lesson_seconds.json: how long later runs wait for each lesson derives from it")


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Every test runs with outbound connections refused, except to this machine."""
    monkeypatch.setattr(socket.socket, "connect", _loopback_only)


@pytest.fixture(scope="module")
def one_thread():
    """Run a module's models on one torch thread. Models this small run fastest on one thread; with two, every
    step waits for both, so a busy CPU that pauses either one shows up in the timings many times over."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_hf_models():
    """Tiny random configs of each supported family: (name, config, model class)."""
    from transformers import (GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, MistralConfig,
                              MistralForCausalLM, Qwen2Config, Qwen2ForCausalLM)

    # A large init makes attention sharp, so outputs depend strongly on every earlier K/V row:
    # with the default 0.02 a model is nearly blind to context and wrong rows would go unnoticed.
    common = dict(vocab_size=320, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                  num_attention_heads=4, max_position_embeddings=96, initializer_range=0.3)
    return {
        "llama": (LlamaConfig(**common, num_key_value_heads=2, tie_word_embeddings=False,
                              rope_parameters={"rope_type": "default", "rope_theta": 5000.0}), LlamaForCausalLM),
        "llama3-scaled-biased-tied": (LlamaConfig(**common, num_key_value_heads=1, attention_bias=True, mlp_bias=True,
                                                  tie_word_embeddings=True, rope_parameters={
                                                      "rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                                                      "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                                      "original_max_position_embeddings": 32}), LlamaForCausalLM),
        "smollm-linear-rope": (LlamaConfig(**common, num_key_value_heads=4, tie_word_embeddings=True, rope_parameters={
            "rope_type": "linear", "rope_theta": 10000.0, "factor": 2.0}), LlamaForCausalLM),
        "qwen2": (Qwen2Config(**common, num_key_value_heads=2, tie_word_embeddings=True), Qwen2ForCausalLM),
        "mistral-sliding": (MistralConfig(**common, num_key_value_heads=2, sliding_window=8, head_dim=24), MistralForCausalLM),
        "gpt2": (GPT2Config(vocab_size=320, n_embd=64, n_layer=2, n_head=4, n_positions=96, initializer_range=0.3,
                            bos_token_id=0, eos_token_id=0), GPT2LMHeadModel),
    }


@pytest.fixture(scope="session")
def random_checkpoints(tmp_path_factory):
    """Each random model saved as a Hugging Face checkpoint folder: {name: (folder, reference model)}."""
    torch.manual_seed(0)
    out = {}
    for name, (config, cls) in random_hf_models().items():
        folder = tmp_path_factory.mktemp(name)
        reference = cls(config).eval()
        reference.save_pretrained(folder)
        out[name] = (folder, reference)
    return out


@pytest.fixture(scope="session")
def small_model(random_checkpoints):
    """A random two-layer Llama (vocab 320) loaded through the workbook."""
    import workbook

    return workbook.load_model(random_checkpoints["llama"][0], device="cpu")


@pytest.fixture(scope="session")
def small_tokenizer():
    """A byte-level BPE with the same vocabulary size as `small_model`, trained on a few sentences."""
    from workbook import BPETokenizer

    text = ["You are a careful support assistant for an online shop. Answer briefly and politely.",
            "The user asks about orders, refunds and delivery dates. Never invent an order number."] * 5
    tok = BPETokenizer.train(text, vocab_size=320, special_tokens=["<|endoftext|>", "<|system|>", "<|user|>", "<|end|>"])
    tok.eos_token = "<|endoftext|>"
    tok.chat_templates = {"default": "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"}
    return tok
