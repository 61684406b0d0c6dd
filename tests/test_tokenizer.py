"""Our written-out BPE against the `tokenizers` library, round trips, training, templates, divergence."""

import json

import pytest
from hypothesis import given, settings, strategies as st

from workbook import BPETokenizer, EmptyInputError, WorkbookError, first_divergence, load_tokenizer
from workbook.tokenizer import shared_prefix_length
from workbook.tokenizer import HFTokenizer

SPECIALS = ["<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>", "<|u"]
TRAINING_TEXT = [
    "The cache stores keys and values for every layer. def encode(text):\n    return [ord(c) for c in text]\n",
    "Prompt caching rewards a stable prefix: 1024 tokens, then 128-token steps. Ünïcödé, 日本語, emoji 🙂.\n",
    "<|system|>You are a helpful assistant.<|end|><|user|>What is 12 * 34?<|end|><|assistant|>408<|end|>",
] * 30
HARD_TEXTS = [
    "Hello   world\n\n\t  x", "naïve café — 日本語 🙂🙂 ", "1234567 3.14 x=10_000 0xFF",
    "def f(a, b):\n    return {'k': [a, b]}  \n", "<|user|>hi<|endoftext|><|u<|userx<|end|>",
    "  leading and trailing  ", "I'm we'll they've DON'T", "\r\n\u00a0\u2003 mixed\u200b", "", " ",
    '{"b": 1, "a": [true, null]}', "tabs\t\tand\n\n\nnewlines   ",
]
CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>{% endif %}")


@pytest.fixture(scope="module")
def hf_trained(tmp_path_factory):
    """A byte-level BPE trained by the `tokenizers` library, saved as tokenizer.json."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(TRAINING_TEXT, trainers.BpeTrainer(
        vocab_size=600, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=SPECIALS))
    folder = tmp_path_factory.mktemp("hf_bpe")
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "<|endoftext|>",
        "chat_template": [{"name": "default", "template": CHAT_TEMPLATE},
                          {"name": "dated", "template": "<|system|>Today is {{ strftime_now('%d %b %Y') }}.<|end|>" + CHAT_TEMPLATE}]}))
    (folder / "config.json").write_text("{}")
    return folder, tok


@pytest.mark.parametrize("text", HARD_TEXTS)
def test_same_ids_as_the_tokenizers_library(hf_trained, text):
    folder, reference = hf_trained
    ours = BPETokenizer.from_folder(folder)
    assert ours.encode(text) == reference.encode(text).ids
    assert ours.decode(ours.encode(text)) == reference.decode(reference.encode(text).ids, skip_special_tokens=False)


@settings(max_examples=150, deadline=None)
@given(st.text())
def test_round_trip_is_exact_for_any_unicode_string(text):
    tok = _trained_here()
    assert tok.decode(tok.encode(text)) == text


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab cé\n日🙂<|>user")), max_size=40))
def test_same_ids_as_the_library_on_random_text(hf_trained, text):
    folder, reference = hf_trained
    assert BPETokenizer.from_folder(folder).encode(text) == reference.encode(text).ids


_TRAINED = {}


def _trained_here():
    if "tok" not in _TRAINED:
        _TRAINED["tok"] = BPETokenizer.train(TRAINING_TEXT[:3], vocab_size=320, special_tokens=["<|endoftext|>"])
    return _TRAINED["tok"]


def test_training_learns_frequent_pairs_first_and_merges_shorten_text():
    tok = _trained_here()
    assert tok.vocab_size == 320 and len(tok.merges) == 320 - 256 - 1
    assert tok.readable_merges(1)[0].endswith("-> " + "".join(tok.merges[0]))
    text = "The cache stores keys and values"
    assert len(tok.encode(text)) < len(text.encode("utf-8"))
    assert BPETokenizer.train(TRAINING_TEXT[:3], 320, ["<|endoftext|>"]).merges == tok.merges  # deterministic


def test_save_and_load_round_trip_and_the_library_reads_our_file(tmp_path):
    from tokenizers import Tokenizer

    trained = _trained_here()
    tok = BPETokenizer(trained.vocab, trained.merges, trained.special_tokens, chat_templates={"default": CHAT_TEMPLATE})
    tok.save(tmp_path)
    again = BPETokenizer.from_folder(tmp_path)
    library = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    for text in HARD_TEXTS:
        assert again.encode(text) == tok.encode(text) == library.encode(text).ids
    assert again.chat_templates == {"default": CHAT_TEMPLATE}


def test_chat_template_renders_like_transformers(hf_trained):
    from transformers import AutoTokenizer

    folder, _ = hf_trained
    ours, theirs = load_tokenizer(folder), AutoTokenizer.from_pretrained(folder)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    text = ours.apply_chat_template(messages)
    assert text == "<|system|>Be brief.<|end|><|user|>Hi<|end|><|assistant|>"
    assert text == theirs.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert ours.apply_chat_template(messages, template="dated").startswith("<|system|>Today is ")
    assert ours.encode_chat(messages) == ours.encode(text)
    with pytest.raises(WorkbookError, match="default, dated"):
        ours.apply_chat_template(messages, template="nope")
    with pytest.raises(EmptyInputError):
        ours.apply_chat_template([])


def test_non_bpe_tokenizers_fall_back_to_transformers(hf_trained, tmp_path):
    folder, _ = hf_trained
    data = json.loads((folder / "tokenizer.json").read_text())
    data["normalizer"] = {"type": "Lowercase"}  # not something our BPE reproduces
    (tmp_path / "tokenizer.json").write_text(json.dumps(data))
    (tmp_path / "config.json").write_text("{}")
    tok = load_tokenizer(tmp_path)
    assert isinstance(tok, HFTokenizer)
    assert tok.decode(tok.encode("HeLLo")) == "hello"


def test_first_divergence():
    assert first_divergence([1, 2, 3], [1, 2, 3]) is None
    assert first_divergence([1, 2, 3], [1, 9, 3]) == 1
    assert first_divergence([1, 2], [1, 2, 3]) == 2
    assert first_divergence([], [5]) == 0


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 1200), st.lists(st.integers(0, 2), max_size=80), st.lists(st.integers(0, 2), max_size=80))
def test_first_divergence_is_the_first_index_that_differs(shared, tail_a, tail_b):
    # Long shared heads reach past the first slices it compares (16, 64, 256, 1024 tokens).
    a, b = [7] * shared + tail_a, [7] * shared + tail_b
    first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), None)
    expected = first if first is not None else (None if len(a) == len(b) else min(len(a), len(b)))
    assert first_divergence(a, b) == first_divergence(tuple(b), tuple(a)) == expected


def test_shared_prefix_length():
    assert shared_prefix_length([1, 2, 3], [1, 2, 3]) == 3  # equal: all of it, where first_divergence says None
    assert shared_prefix_length([1, 2, 3], [1, 9, 3]) == 1
    assert shared_prefix_length([1, 2], [1, 2, 3]) == shared_prefix_length([1, 2, 3], [1, 2]) == 2
    assert shared_prefix_length([], []) == 0
    assert shared_prefix_length([], [5]) == shared_prefix_length([5], []) == 0
    assert shared_prefix_length("cache", "cached") == 5  # any sequences: here characters


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 1200), st.lists(st.integers(0, 2), max_size=80), st.lists(st.integers(0, 2), max_size=80))
def test_shared_prefix_length_counts_the_items_before_the_first_difference(shared, tail_a, tail_b):
    a, b = [7] * shared + tail_a, [7] * shared + tail_b
    expected = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    assert shared_prefix_length(a, b) == shared_prefix_length(tuple(b), tuple(a)) == expected


def test_one_changed_character_changes_ids_from_its_piece_onwards():
    tok = _trained_here()
    a, b = tok.encode("The cache stores keys."), tok.encode("The cache stores keys!")
    assert first_divergence(a, b) == len(a) - 1


def test_bad_input():
    tok = _trained_here()
    with pytest.raises(WorkbookError, match="str"):
        tok.encode(b"bytes")
    with pytest.raises(WorkbookError, match="not in this tokenizer"):
        tok.decode([99999])
    with pytest.raises(WorkbookError, match="at least 257"):
        BPETokenizer.train(["x"], vocab_size=100, special_tokens=["<|endoftext|>"])
