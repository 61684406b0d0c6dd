"""GGUF loading on small files written here with `gguf.GGUFWriter`: logits against transformers' own GGUF loading,
the tokenizer against transformers' GGUF tokenizer conversion, and the clear refusals."""

import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType as Q
from gguf import GGUFWriter, TokenType, quants

import workbook
from workbook import UnknownModelError, UnsupportedModelError
from workbook.errors import ModelNotInstalledError
from workbook.gguf_loader import unpermute_rotary

HEADS, KV_HEADS = 4, 2


def llama_cpp_permute(weights: np.ndarray, heads: int) -> np.ndarray:
    """What llama.cpp's convert_hf_to_gguf.py does to Q/K rows (LlamaModel.permute), copied to test the inverse."""
    return weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


def gguf_name(name: str) -> str:
    names = {"model.embed_tokens": "token_embd", "model.norm": "output_norm", "lm_head": "output",
             "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm", "self_attn.q_proj": "attn_q",
             "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
             "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
    stem, kind = name.rsplit(".", 1)
    if stem.startswith("model.layers."):
        _, _, layer, rest = stem.split(".", 3)
        return f"blk.{layer}.{names[rest]}.{kind}"
    return f"{names[stem]}.{kind}"


def write_gguf(path, hf_model, tokenizer, *, arch="llama", matrix_type=Q.Q4_1, embedding_type=Q.Q8_0, as_int32=()):
    """A GGUF of `hf_model` (a transformers Llama) and `tokenizer` (our BPETokenizer), as llama.cpp's converter lays it out."""
    cfg = hf_model.config
    writer = GGUFWriter(str(path), arch)
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(cfg.num_attention_heads)
    writer.add_head_count_kv(cfg.num_key_value_heads)
    writer.add_rope_freq_base(cfg.rope_parameters["rope_theta"])
    writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    writer.add_vocab_size(cfg.vocab_size)
    writer.add_rope_dimension_count(cfg.hidden_size // cfg.num_attention_heads)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt2")
    tokens = [tokenizer.id_to_token[i] for i in range(tokenizer.vocab_size)]
    writer.add_token_list(tokens)
    writer.add_token_types([TokenType.CONTROL if t in tokenizer.special_tokens else TokenType.NORMAL for t in tokens])
    writer.add_token_merges([f"{a} {b}" for a, b in tokenizer.merges])
    writer.add_bos_token_id(tokenizer.bos_token_id)
    writer.add_eos_token_id(tokenizer.eos_token_id)
    writer.add_chat_template(tokenizer.chat_templates["default"])
    for name, weight in hf_model.state_dict().items():
        if name == "lm_head.weight" and cfg.tie_word_embeddings:
            continue  # llama.cpp writes no output.weight for tied embeddings
        values = weight.float().numpy()
        if name.endswith("q_proj.weight"):
            values = llama_cpp_permute(values, cfg.num_attention_heads)
        elif name.endswith("k_proj.weight"):
            values = llama_cpp_permute(values, cfg.num_key_value_heads)
        qtype = Q.F32 if values.ndim == 1 else embedding_type if "embed" in name else matrix_type
        if gguf_name(name) in as_int32:
            writer.add_tensor(gguf_name(name), values.astype(np.int32))
        elif qtype == Q.F32:
            writer.add_tensor(gguf_name(name), values)
        elif qtype == Q.F16:
            writer.add_tensor(gguf_name(name), values.astype(np.float16))
        else:
            writer.add_tensor(gguf_name(name), quants.quantize(values, qtype), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def tiny_tokenizer():
    return workbook.load_tokenizer("tiny")


@pytest.fixture(scope="module")
def hf_llama(tiny_tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=tiny_tokenizer.vocab_size, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                      num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, max_position_embeddings=256,
                      rope_theta=10000.0, tie_word_embeddings=True)
    return LlamaForCausalLM(cfg).eval()


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory, hf_llama, tiny_tokenizer):
    return write_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf", hf_llama, tiny_tokenizer)


def test_unpermute_is_the_inverse_of_llama_cpp_permute():
    rows = np.arange(8 * 3 * 2, dtype=np.float32).reshape(8 * 2, 3)
    for heads in (1, 2, 4):
        assert not np.array_equal(llama_cpp_permute(rows, heads), rows)
        assert np.array_equal(unpermute_rotary(llama_cpp_permute(rows, heads), heads), rows)


def test_logits_equal_transformers_gguf_loading(tiny_gguf):
    from transformers import AutoModelForCausalLM

    ours = workbook.load_model(str(tiny_gguf), device="cpu")
    reference = AutoModelForCausalLM.from_pretrained(tiny_gguf.parent, gguf_file=tiny_gguf.name, dtype=torch.float32).eval()
    ids = torch.randint(0, ours.config.vocab_size, (2, 40), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = reference(ids).logits
    assert ours.config.num_kv_heads == KV_HEADS and ours.config.tie_word_embeddings
    assert (ours(ids) - expected).abs().max().item() <= 1e-4


def test_dequantised_weights_are_near_the_originals(tiny_gguf, hf_llama):
    ours = workbook.load_model(str(tiny_gguf), device="cpu").state_dict()
    for name, weight in hf_llama.state_dict().items():
        error = (ours[name] - weight).abs().max().item()
        # Q4_1 keeps 16 levels between each block's min and max; the exact F32 norms come back exactly.
        assert error <= (2 * weight.abs().max().item() / 15 if weight.dim() == 2 else 0.0), name


def test_tokenizer_equals_the_shipped_one_and_transformers_conversion(tiny_gguf, tiny_tokenizer):
    from transformers import AutoTokenizer

    ours = workbook.load_tokenizer(str(tiny_gguf))
    hf = AutoTokenizer.from_pretrained(tiny_gguf.parent, gguf_file=tiny_gguf.name)
    texts = ["def f(x):\n    return x  # done", "Héllo, wörld! 你好 🎉", "  spaced   out\t\ttabs\n\n\n",
             "<|user|>Where is my order?<|end|>", "12345 + 678 = 13023"]
    for text in texts:
        assert ours.encode(text) == tiny_tokenizer.encode(text) == hf.encode(text, add_special_tokens=False)
        assert ours.decode(ours.encode(text)) == text
    assert (ours.bos_token, ours.eos_token) == (tiny_tokenizer.bos_token, tiny_tokenizer.eos_token)


def test_f16_and_q8_tensors_load_too(tmp_path, hf_llama, tiny_tokenizer):
    path = write_gguf(tmp_path / "f16.gguf", hf_llama, tiny_tokenizer, matrix_type=Q.F16, embedding_type=Q.Q8_0)
    ours = workbook.load_model(str(path), device="cpu").state_dict()
    weight = hf_llama.state_dict()["model.layers.1.self_attn.k_proj.weight"]
    assert (ours["model.layers.1.self_attn.k_proj.weight"] - weight).abs().max().item() <= 1e-3


def test_an_unsupported_architecture_is_refused_by_name(tmp_path, hf_llama, tiny_tokenizer):
    path = write_gguf(tmp_path / "mamba.gguf", hf_llama, tiny_tokenizer, arch="mamba")
    with pytest.raises(UnsupportedModelError, match="'mamba'"):
        workbook.load_model(str(path), device="cpu")


def test_an_unsupported_quantisation_type_is_refused_by_name(tmp_path, hf_llama, tiny_tokenizer):
    # 32-bit integers: a GGUF tensor type that has no dequantisation.
    path = write_gguf(tmp_path / "int32.gguf", hf_llama, tiny_tokenizer, as_int32=("blk.0.ffn_up.weight",))
    with pytest.raises(UnsupportedModelError, match=r"'blk.0.ffn_up.weight' is stored as I32"):
        workbook.load_model(str(path), device="cpu")


def test_a_missing_file_a_wrong_file_and_an_uninstalled_model_say_what_to_do(tmp_path, monkeypatch):
    with pytest.raises(UnknownModelError, match="no GGUF file"):
        workbook.load_model(str(tmp_path / "absent.gguf"))
    (tmp_path / "text.gguf").write_text("not a GGUF file at all", encoding="utf-8")
    with pytest.raises(UnsupportedModelError, match="could not be read as a GGUF file"):
        workbook.load_tokenizer(str(tmp_path / "text.gguf"))
    import workbook.gguf_loader as loader

    monkeypatch.setitem(loader.GGUF_MODELS, "not-installed", ("no-such-distribution-xyz", "x/model.gguf"))
    with pytest.raises(ModelNotInstalledError, match="make setup"):
        workbook.load_tokenizer("not-installed")


def test_use_model_switches_the_default_model_once_the_model_is_found(tiny_gguf, monkeypatch):
    from workbook.checkpoints import MODEL_SETTING

    monkeypatch.setenv(MODEL_SETTING, "tiny")
    with pytest.raises(UnknownModelError):
        workbook.use_model("no-such-model-here")
    assert workbook.default_model() == "tiny"  # a refused name changes nothing
    assert workbook.use_model(str(tiny_gguf)) == str(tiny_gguf) == workbook.default_model()
    assert workbook.load_model(workbook.default_model(), device="cpu").config.hidden_size == 128


def test_quantised_benchmark_compares_each_variant_with_the_dequantised_reference(tiny_gguf, capsys):
    from workbook.bench.quantised import run

    result = run(model=str(tiny_gguf), quick=True, save=False)
    reference, bf16, int8 = result["variants"]
    assert reference["greedy_agreement"] == 1.0 and reference["first_token_kl_max"] == 0.0
    assert bf16["first_token_kl_max"] > 0 and int8["first_token_kl_max"] > 0  # each variant really differs
    assert bf16["kv_bytes_per_token"] == reference["kv_bytes_per_token"] / 2
    assert int8["kv_bytes_per_token"] < bf16["kv_bytes_per_token"]
    weights = result["weights"]
    assert weights["in_file"] < weights["bfloat16"] < weights["float32"] == 4 * weights["parameters"]
    assert "greedy agreement" in capsys.readouterr().out


def test_self_draft_benchmark_shares_the_targets_weights_and_keeps_its_output(tiny_gguf, capsys):
    from workbook.bench.self_draft import early_exit_draft, run

    target = workbook.load_model(str(tiny_gguf), device="cpu")
    draft = early_exit_draft(target, 1)
    assert draft.config.num_layers == 1 and draft.model.layers[0] is target.model.layers[0]
    assert draft.lm_head is target.lm_head and draft.num_parameters() < target.num_parameters()
    result = run(model=str(tiny_gguf), layers=[1], quick=True, save=False)  # asserts the target's tokens inside
    (row,) = result["drafts"]
    assert 0.0 <= row["acceptance"] <= 1.0 and row["tokens_per_target_pass"] >= 1.0
    assert "first  1 of 2 layers" in capsys.readouterr().out
