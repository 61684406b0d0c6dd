"""The shipped models and tokenizer in data/models/: they load offline, match `transformers`, and
measure what their model card says."""

import json
import time
from pathlib import Path

import pytest
import torch

import workbook
from workbook.paths import MODELS_DIR
from workbook.training import corpus
from workbook.training.train import HELDOUT_PATH, LESSON_PROMPTS, greedy_agreement, heldout_ids, heldout_loss

TARGET_DIR, DRAFT_DIR = MODELS_DIR / "tiny", MODELS_DIR / "tiny-draft"
MESSAGES = [
    {"role": "system", "content": "You are a friendly customer support assistant for Lumen Books, an online shop."},
    {"role": "user", "content": "Hi, where is my order A12345?"},
]


def recorded(folder: Path) -> dict:
    return json.loads((folder / "training.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def target():
    return workbook.load_model("tiny", device="cpu")


@pytest.fixture(scope="module")
def draft():
    return workbook.load_model("tiny-draft", device="cpu")


@pytest.fixture(scope="module")
def tokenizer():
    return workbook.load_tokenizer("tiny")


@pytest.fixture(scope="module")
def heldout(tokenizer):
    return heldout_ids(tokenizer)


def test_shipped_files_fit_the_size_budget():
    files = [f for d in (TARGET_DIR, DRAFT_DIR) for f in d.iterdir()]
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= {f.name for f in files}
    assert sum(f.stat().st_size for f in files) <= 40 * 2**20
    for folder in (TARGET_DIR, DRAFT_DIR):
        config = json.loads((folder / "config.json").read_text())
        assert config["dtype"] == "float16" and config["vocab_size"] == 4096


def test_heldout_text_is_shipped_with_both_kinds_of_text():
    text = HELDOUT_PATH.read_text(encoding="utf-8")
    docs = [d for d in text.split(corpus.BOS) if d]
    chats = [d for d in docs if d.startswith("<|system|>")]
    assert 100_000 <= len(text.encode("utf-8")) <= 200_000
    assert 0.3 <= sum(map(len, chats)) / len(text) <= 0.7  # about half chats, half Python docs


def test_draft_is_at_least_five_times_smaller(target, draft):
    assert target.num_parameters() >= 5 * draft.num_parameters()
    assert target.num_parameters() == recorded(TARGET_DIR)["parameters"]
    assert draft.num_parameters() == recorded(DRAFT_DIR)["parameters"]


@pytest.mark.parametrize("name", ["tiny", "tiny-draft"])
def test_logits_match_transformers(name, tokenizer):
    from transformers import LlamaForCausalLM

    ids = torch.tensor([tokenizer.encode(tokenizer.apply_chat_template(MESSAGES))])
    ours = workbook.load_model(name, device="cpu")(ids)
    reference = LlamaForCausalLM.from_pretrained(MODELS_DIR / name, dtype=torch.float32).eval()
    with torch.no_grad():
        theirs = reference(ids).logits
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)


def test_encode_matches_the_tokenizers_library(tokenizer):
    from tokenizers import Tokenizer

    text = corpus.render_chat(MESSAGES, add_generation_prompt=True) + "Your order A12345 is  in transit 🚚 — über café.\n\n\tdef f(x):\n"
    reference = Tokenizer.from_file(str(TARGET_DIR / "tokenizer.json"))
    assert tokenizer.encode(text) == reference.encode(text).ids
    assert tokenizer.decode(tokenizer.encode(text)) == text


def test_chat_templates_write_the_corpus_format(tokenizer):
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(TARGET_DIR)
    assert tokenizer.apply_chat_template(MESSAGES) == corpus.render_chat(MESSAGES, add_generation_prompt=True)
    assert hf.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True) == tokenizer.apply_chat_template(MESSAGES)
    # The dated template stamps today's date; read the clock on both sides in case midnight passes.
    before = time.strftime("%d %b %Y")
    ours = tokenizer.apply_chat_template(MESSAGES, template="dated")
    theirs = hf.apply_chat_template(MESSAGES, chat_template="dated", tokenize=False, add_generation_prompt=True)
    after = time.strftime("%d %b %Y")
    assert ours in {corpus.render_chat(MESSAGES, add_generation_prompt=True, date=d) for d in (before, after)}
    assert theirs == ours
    # Given a date_string, as Llama 3.1's template is, it stamps that date instead of the clock's.
    pinned = tokenizer.apply_chat_template(MESSAGES, template="dated", date_string="15 Mar 2026")
    assert pinned == corpus.render_chat(MESSAGES, add_generation_prompt=True, date="15 Mar 2026")
    assert pinned == hf.apply_chat_template(MESSAGES, chat_template="dated", tokenize=False, add_generation_prompt=True,
                                            date_string="15 Mar 2026")
    assert tokenizer.eos_token_id == tokenizer.encode(corpus.END)[0]


def greedy(model, ids: list[int], stop: int, new_tokens: int = 40) -> list[int]:
    out = []
    for _ in range(new_tokens):
        nxt = int(model(torch.tensor([ids + out]))[0, -1].argmax())
        if nxt == stop:
            break
        out.append(nxt)
    return out


@pytest.mark.parametrize("messages", LESSON_PROMPTS, ids=["shop", "coding", "travel"])
def test_target_continues_lesson_prompts_with_text(target, tokenizer, messages):
    ids = tokenizer.encode(tokenizer.apply_chat_template(messages))
    out = greedy(target, ids, tokenizer.eos_token_id)
    assert len(out) >= 5, tokenizer.decode(out)
    assert len(set(out)) >= 5 and max(out.count(t) for t in out) <= len(out) // 2, tokenizer.decode(out)


@pytest.mark.slow
@pytest.mark.parametrize("folder", [TARGET_DIR, DRAFT_DIR], ids=["tiny", "tiny-draft"])
def test_heldout_loss_is_the_recorded_one(folder, heldout):
    model = workbook.load_model(folder, device="cpu")
    assert heldout_loss(model, heldout) == pytest.approx(recorded(folder)["heldout_loss"], abs=2e-3)


@pytest.mark.slow
def test_draft_agrees_with_target(target, draft, heldout):
    agreement = greedy_agreement(draft, target, heldout)
    assert agreement >= 0.6
    assert agreement == pytest.approx(recorded(DRAFT_DIR)["greedy_agreement_with_tiny"], abs=2e-3)
