"""The embedding model, offline: the bundled all-MiniLM-L6-v2, its equivalence check, the setting that swaps it."""

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from workbook.errors import EmptyInputError, UnknownModelError
from workbook.semantic import EMBED_SETTING, SemanticCache, load_embedder
from workbook.semantic.embedder import BUNDLED, bundled_folder, embedder_folder

TEXTS = ["How do I reset my password?", "I forgot my password, how can I change it?", "How do I delete a file?",
         "Harbor & Pine ships to Canada and Mexico."]


@pytest.fixture(scope="module")
def embedder():
    return load_embedder(device="cpu")


def test_the_bundled_model_gives_unit_vectors(embedder):
    assert embedder.name == BUNDLED and embedder.dim == 384
    vectors = embedder(TEXTS)
    assert vectors.shape == (4, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder(TEXTS[0]).shape == (384,) and embedder(TEXTS[:0]).shape == (0, 384)
    assert embedder.similarity(TEXTS[0], TEXTS[1]) > embedder.similarity(TEXTS[0], TEXTS[3])


def test_sentence_transformers_matches_the_model_card_recipe(embedder):
    """The check the issue asks for: mean pooling over transformers' token vectors, then normalising, as
    all-MiniLM-L6-v2's card describes, gives the vectors sentence-transformers computes from the same folder."""
    folder = bundled_folder()
    tokenizer, model = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()
    batch = tokenizer(TEXTS, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        tokens = model(**batch).last_hidden_state
    mask = batch["attention_mask"][..., None].float()
    pooled = torch.nn.functional.normalize((tokens * mask).sum(1) / mask.sum(1), dim=-1).numpy()
    cosines = np.einsum("ij,ij->i", pooled, embedder(TEXTS))
    assert cosines.min() >= 0.9999


def test_the_setting_swaps_the_model(monkeypatch, tmp_path):
    monkeypatch.setenv(EMBED_SETTING, str(bundled_folder()))
    assert embedder_folder() == bundled_folder()
    assert load_embedder(device="cpu").name == str(bundled_folder())
    monkeypatch.setenv(EMBED_SETTING, str(tmp_path / "missing"))
    with pytest.raises(UnknownModelError, match="no folder"):
        load_embedder()


def test_an_unknown_model_is_a_clear_error_offline(tmp_path):
    with pytest.raises(UnknownModelError, match="not in the local Hugging Face cache"):
        load_embedder("nobody/no-such-embedding-model")
    with pytest.raises(UnknownModelError, match="could not be loaded"):
        load_embedder(tmp_path)  # a folder, but no model in it


def test_empty_text_is_refused(embedder):
    with pytest.raises(EmptyInputError):
        embedder(["fine", ""])


def test_the_real_model_serves_a_paraphrase_and_refuses_a_near_miss(embedder):
    cache = SemanticCache(embedder)
    cache.put("How do I reset my password?", "Use the link on the sign-in page.")
    cache.put("How do I delete my account?", "Settings, then Delete account.")
    assert cache.get("I forgot my password, how can I reset it?").answer == "Use the link on the sign-in page."
    assert cache.get("How do I delete a file?") is None
