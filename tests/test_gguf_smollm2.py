"""The real model, SmolLM2-135M-Instruct's Q4_1 GGUF (installed by `make setup`), against the references:
token ids against Hugging Face `tokenizers` built from the same file, logits against transformers' own GGUF
loading, and the chat template against transformers' `apply_chat_template`."""

import random

import pytest
import torch

import workbook
from workbook.gguf_loader import gguf_file, metadata, read_gguf
from workbook.paths import DATA_DIR

NAME = "smollm2-135m-instruct"

EDGE_CASES = [
    "", " ", "  ", "\n", "\n\n\n", "\t\t", " \n \n", "a  b   c    d", "trailing spaces   ", "   leading",
    "x=100000; y = 3.14159e-10", "2024-01-05T09:15:00Z", "1234567890 0987654321", "v1.2.3-rc4",
    "def add(a, b):\n    return a + b\n", "for i in range(10):\n\tprint(i ** 2)  # squares", "if (x != y) { return -1; }",
    "SELECT * FROM users WHERE id = 42;", '{"tool": "reset_password", "arguments": {"email": "a@b.co"}}',
    "Héllo wörld, ça va? Ñandú, façade, naïve", "Привет, мир! Как дела?", "你好，世界。今天天气很好。", "こんにちは世界",
    "مرحبا بالعالم", "שלום עולם", "🎉🚀 emoji 👩‍💻 and 🇫🇷 flags", "zero\u200bwidth and non\u00a0breaking",
    "don't can't won't I'm you're they've we'll he'd", "DON'T SHOUT", "CamelCaseIdentifiers and snake_case_names",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n", "<|endoftext|>", "a<|im_end|>b",
    "<file_sep><filename>main.py<jupyter_code>import os", "Mixed\r\nline\rendings\n", "...!!!???---___",
    "a  1", "x   42 apples", "tab\t\t7", "line\n\n3", "² and ½ and ١٢٣ and Ⅻ", "room 101's door", "3rd  4th\n 5th",
    "https://example.com/path?q=1&r=two#frag", "C:\\Users\\name\\file.txt", "$100.00 + €20,50 = ¥?",
]


def varied_texts(n: int = 300) -> list[str]:
    """Hand-picked edge cases, then paragraphs and line pieces of the held-out corpus (support chats, Python docs)."""
    corpus = (DATA_DIR / "corpus" / "heldout.txt").read_text(encoding="utf-8")
    paragraphs = [p for p in corpus.split("\n\n") if p.strip()]
    rng = random.Random(0)
    pieces = [p[:400] for p in rng.sample(paragraphs, min(len(paragraphs), n))]
    pieces += [p[i:i + 60] for p in pieces[:50] for i in (3, 17)]  # cut mid-word and mid-whitespace
    return (EDGE_CASES + pieces)[:n]


@pytest.fixture(scope="module")
def path():
    return gguf_file(NAME)


@pytest.fixture(scope="module")
def hf_tokenizer(path):
    """transformers' tokenizer from the GGUF, splitting text as SmolLM2's tokenizer.json and llama.cpp's "smollm" do.

    transformers' GGUF conversion keeps GPT-2's split for "smollm", which differs from both after a run of
    spaces before a digit ("a  1": ['a', 'Ġ', 'Ġ', '1'] there, ['a', 'ĠĠ', '1'] in the model's own tokenizer).
    """
    from tokenizers import pre_tokenizers
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    tokenizer.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    return tokenizer


@pytest.fixture(scope="module")
def ours():
    return workbook.load_tokenizer(NAME)


def test_the_file_is_the_one_the_lessons_describe(path, ours):
    model_meta = read_gguf(path)
    assert metadata(model_meta, "general.architecture") == "llama"
    assert ours.vocab_size == 49152 and (ours.bos_token, ours.eos_token) == ("<|im_start|>", "<|im_end|>")


def test_token_ids_equal_hugging_face_tokenizers(ours, hf_tokenizer):
    texts = varied_texts()
    assert len(texts) == 300
    for text in texts:
        expected = hf_tokenizer.encode(text, add_special_tokens=False)
        assert ours.encode(text) == expected, text
        assert ours.decode(expected) == text


def test_chat_template_renders_as_transformers(ours, hf_tokenizer):
    conversations = [
        [{"role": "user", "content": "What is the capital of France?"}],
        [{"role": "system", "content": "You answer in one word."}, {"role": "user", "content": "Sky colour?"}],
        [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"},
         {"role": "user", "content": "Tell me a joke about caches.\nMake it short."}],
    ]
    for messages in conversations:
        for add_generation_prompt in (True, False):
            expected = hf_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
            rendered = ours.apply_chat_template(messages, add_generation_prompt=add_generation_prompt)
            assert rendered == expected
            assert ours.encode_chat(messages, add_generation_prompt=add_generation_prompt) == \
                hf_tokenizer.encode(expected, add_special_tokens=False)


@pytest.mark.slow
def test_logits_equal_transformers_gguf_loading(path, ours):
    from transformers import AutoModelForCausalLM

    model = workbook.load_model(NAME, device="cpu")
    reference = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()
    ids = torch.tensor([ours.encode_chat([{"role": "user", "content": "Name three primary colours."}])])
    with torch.no_grad():
        expected = reference(ids).logits
    assert (model(ids) - expected).abs().max().item() <= 1e-4
    assert model(ids)[0, -1].argmax().item() == expected[0, -1].argmax().item()
