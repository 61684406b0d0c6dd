"""Lesson 9's KV memory at real scale: each shipped config against hand arithmetic, dtypes, the GPU fit, the view."""

import types

import pytest

from workbook.errors import WorkbookError
from workbook.kv_memory import (DTYPE_BITS, attention_kind, format_bytes, kv_memory, load_configs,
                                multi_head_config)
from workbook.widgets.kv_memory_view import KVMemoryState, KVMemoryView

KiB, GiB = 1024, 1024**3
CONFIGS = load_configs()

# Bytes per token in 16 bits, worked by hand from each config.json. Standard attention keeps a K and a V vector per
# K/V head per layer: 2 * layers * kv_heads * head_dim * 2 bytes, head_dim = hidden_size / heads = 128 for all five.
# MLA keeps one latent and one RoPE key per layer: layers * (kv_lora_rank + qk_rope_head_dim) * 2 bytes.
BYTES_PER_TOKEN = {
    "llama-3-8b": 2 * 32 * 8 * 128 * 2,  # 131,072 = 128 KiB: 4096 / 32 heads = 128
    "llama-3-70b": 2 * 80 * 8 * 128 * 2,  # 327,680 = 320 KiB: 8192 / 64 heads = 128
    "mistral-7b": 2 * 32 * 8 * 128 * 2,  # 131,072 = 128 KiB, the same shape as Llama 3 8B
    "qwen2.5-7b": 2 * 28 * 4 * 128 * 2,  # 57,344 = 56 KiB: 3584 / 28 heads = 128
    "llama-2-7b": 2 * 32 * 32 * 128 * 2,  # 524,288 = 512 KiB: multi-head, 32 K/V heads
    "deepseek-v2-lite": 27 * (512 + 64) * 2,  # 31,104 bytes = 30.375 KiB
}


def test_every_shipped_config_is_checked_here():
    assert sorted(CONFIGS) == sorted(BYTES_PER_TOKEN)


@pytest.mark.parametrize("name", sorted(BYTES_PER_TOKEN))
def test_bytes_per_token_match_hand_arithmetic(name):
    m = kv_memory(CONFIGS[name], context_tokens=1_000, batch=3)
    assert m.bytes_per_token == BYTES_PER_TOKEN[name]
    assert m.per_sequence_bytes == BYTES_PER_TOKEN[name] * 1_000
    assert m.total_bytes == BYTES_PER_TOKEN[name] * 1_000 * 3
    assert m.weight_bytes == CONFIGS[name]["num_parameters"] * 2


def test_llama_3_8b_holds_one_gib_per_8192_token_sequence():
    m = kv_memory(CONFIGS["llama-3-8b"], 8_192, batch=4)
    assert m.bytes_per_token == 128 * KiB
    assert m.per_sequence_bytes == 1 * GiB  # 128 KiB * 8 Ki tokens
    assert m.total_bytes == 4 * GiB


def test_llama_3_8b_parameter_count_is_the_sum_of_its_matrices():
    """num_parameters is the checkpoint's exact count: the embeddings, 32 layers, the final norm and the head."""
    vocab, d, ffn, kv = 128_256, 4_096, 14_336, 8 * 128
    layer = d * d + 2 * d * kv + d * d + 3 * d * ffn + 2 * d  # q, k and v, o; gate, up, down; two norms
    assert CONFIGS["llama-3-8b"]["num_parameters"] == vocab * d + 32 * layer + d + d * vocab == 8_030_261_248


def test_gqa_against_the_same_model_with_a_kv_head_per_query_head():
    llama3 = CONFIGS["llama-3-8b"]
    mha = kv_memory(multi_head_config(llama3), 8_192)
    assert mha.bytes_per_token == 2 * 32 * 32 * 128 * 2  # 512 KiB: as much as Llama 2 7B
    assert mha.bytes_per_token / kv_memory(llama3, 8_192).bytes_per_token == 32 / 8  # 4 query heads per K/V head
    qwen = CONFIGS["qwen2.5-7b"]
    assert kv_memory(multi_head_config(qwen), 1).bytes_per_token == 7 * kv_memory(qwen, 1).bytes_per_token  # 28 / 4
    llama2 = CONFIGS["llama-2-7b"]
    assert multi_head_config(llama2) == {"num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32,
                                         "head_dim": 128}  # already multi-head: nothing changes


def test_attention_kinds():
    kinds = {name: attention_kind(config) for name, config in CONFIGS.items()}
    assert kinds == {"llama-3-8b": "GQA", "llama-3-70b": "GQA", "mistral-7b": "GQA", "qwen2.5-7b": "GQA",
                     "llama-2-7b": "MHA", "deepseek-v2-lite": "MLA"}
    assert attention_kind({"num_hidden_layers": 1, "hidden_size": 64, "num_attention_heads": 4,
                           "num_key_value_heads": 1}) == "MQA"


def test_mla_stores_one_latent_and_one_rope_key_per_layer_not_k_and_v():
    v3_shape = {"num_hidden_layers": 61, "hidden_size": 7168, "num_attention_heads": 128, "num_key_value_heads": 128,
                "kv_lora_rank": 512, "qk_rope_head_dim": 64, "v_head_dim": 128}
    assert kv_memory(v3_shape, 1).bytes_per_token == 61 * 576 * 2 == 70_272  # no factor 2 for K and V
    lite = CONFIGS["deepseek-v2-lite"]
    mha = kv_memory(multi_head_config(lite), 1)
    assert mha.bytes_per_token == 2 * 27 * 16 * 128 * 2 == 221_184  # a K and a V of 128 values per head
    assert mha.bytes_per_token / kv_memory(lite, 1).bytes_per_token == pytest.approx(7.11, abs=0.01)  # 4096 / 576


@pytest.mark.parametrize("dtype, bits", [("float32", 32), ("bfloat16", 16), ("float16", 16), ("fp8", 8), ("int8", 8),
                                         ("int4", 4), ("int2", 2)])
def test_every_dtype(dtype, bits):
    assert DTYPE_BITS[dtype] == bits
    llama3 = CONFIGS["llama-3-8b"]
    values = 2 * 32 * 8 * 128  # 65,536 values per token
    assert kv_memory(llama3, 10, kv_dtype=dtype).bytes_per_token == values * bits // 8
    assert kv_memory(llama3, 10, weight_dtype=dtype).weight_bytes == 8_030_261_248 * bits // 8


def test_packed_bits_round_up_to_whole_bytes():
    odd = {"num_hidden_layers": 1, "hidden_size": 3, "num_attention_heads": 1}  # 2 * 1 * 1 * 3 = 6 values
    assert kv_memory(odd, 1, kv_dtype="int4").bytes_per_token == 3  # 24 bits
    assert kv_memory(odd, 1, kv_dtype="int2").bytes_per_token == 2  # 12 bits, rounded up


def test_defaults_and_config_objects():
    bare = {"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4}  # MHA, head_dim 16
    assert kv_memory(bare, 1).bytes_per_token == 2 * 2 * 4 * 16 * 2
    assert kv_memory({**bare, "head_dim": 32}, 1).bytes_per_token == 2 * 2 * 4 * 32 * 2  # head_dim given: used
    assert kv_memory(bare, 1).weight_bytes is None  # no num_parameters
    as_object = types.SimpleNamespace(**CONFIGS["deepseek-v2-lite"])
    assert kv_memory(as_object, 1).bytes_per_token == 31_104


def test_a_transformers_config_object():
    from transformers import LlamaConfig

    fields = ("num_hidden_layers", "hidden_size", "num_attention_heads", "num_key_value_heads")
    config = LlamaConfig(**{name: CONFIGS["llama-3-70b"][name] for name in fields})
    assert kv_memory(config, 8_192).per_sequence_bytes == int(2.5 * GiB)  # 320 KiB * 8 Ki tokens


@pytest.mark.parametrize("config, kwargs, message", [
    ({"hidden_size": 4096, "num_attention_heads": 32}, {}, "no 'num_hidden_layers'"),
    ({"num_hidden_layers": 32, "num_attention_heads": 32}, {}, "no 'hidden_size'"),
    ({"num_hidden_layers": 32, "hidden_size": 4096, "num_attention_heads": 0}, {}, "num_attention_heads must be"),
    ({"num_hidden_layers": 32.5, "hidden_size": 4096, "num_attention_heads": 32}, {}, "num_hidden_layers must be a whole number >= 1, not 32.5"),
    ("llama-3-8b", {"context_tokens": 0}, "context_tokens must be"),
    ("llama-3-8b", {"context_tokens": -5}, "context_tokens must be"),
    ("llama-3-8b", {"batch": 0}, "batch must be"),
    ("llama-3-8b", {"kv_dtype": "fp4"}, "Unknown dtype 'fp4'"),
    ("llama-3-8b", {"weight_dtype": "bf16"}, "Unknown dtype 'bf16'"),
])
def test_bad_input_says_what_is_wrong(config, kwargs, message):
    config = CONFIGS.get(config, config) if isinstance(config, str) else config
    with pytest.raises(WorkbookError, match=message):
        kv_memory(config, **{"context_tokens": 8_192, **kwargs})


def test_sequences_that_fit_after_the_weights():
    m = kv_memory(CONFIGS["llama-3-8b"], 8_192)  # 1 GiB per sequence; weights 16,060,522,496 bytes (~15 GiB)
    assert m.sequences_that_fit(80 * GiB) == (80 * GiB - 16_060_522_496) // GiB == 65
    assert m.sequences_that_fit(16_060_522_496 + GiB) == 1
    assert m.sequences_that_fit(16_060_522_496 + GiB - 1) == 0
    big = CONFIGS["llama-3-70b"]
    assert kv_memory(big, 8_192).sequences_that_fit(80 * GiB) == 0  # 141 GB of weights: they do not fit
    fp8 = kv_memory(big, 8_192, weight_dtype="fp8")  # 70,553,706,496 bytes of weights, 2.5 GiB per sequence
    assert fp8.sequences_that_fit(80 * GiB) == (80 * GiB - 70_553_706_496) // int(2.5 * GiB) == 5


def test_sequences_that_fit_refuses_what_it_cannot_count():
    with pytest.raises(WorkbookError, match="positive number of bytes"):
        kv_memory(CONFIGS["llama-3-8b"], 8_192).sequences_that_fit(0)
    with pytest.raises(WorkbookError, match="no num_parameters"):
        kv_memory({"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4}, 1).sequences_that_fit(GiB)


def test_every_config_names_its_sources():
    for name, config in CONFIGS.items():
        page = f"https://huggingface.co/{config['model']}"
        assert config["source"] == {"config": f"{page}/blob/main/config.json", "num_parameters": page}, name
        assert isinstance(config["num_parameters"], int) and isinstance(config["max_position_embeddings"], int)


def test_format_bytes():
    assert format_bytes(131_072) == "128 KiB"
    assert format_bytes(31_104) == "30.4 KiB"
    assert format_bytes(2.5 * GiB) == "2.5 GiB"
    assert format_bytes(500) == "500 bytes"


# ----- the view -------------------------------------------------------------------------------------------------


def test_view_shows_the_default_model():
    view = KVMemoryView()
    s = view.state
    assert (s.model, s.context_tokens, s.gpu_gib, s.error) == ("llama-3-8b", 8_192, 80, "")
    assert s.memory.bytes_per_token == 131_072 and s.sequences == 65
    page = view.summary.value
    assert "131,072 bytes (128 KiB) = 2 (K and V) × 32 layers × 8 K/V heads × 128 values × 2 bytes" in page
    assert "65 sequences of 8,192 tokens" in page
    changes = {o.change: (o.memory.bytes_per_token, o.sequences) for o in s.options}
    assert changes == {"As chosen (bfloat16 cache)": (131_072, 65), "Without GQA: 32 K/V heads, not 8": (524_288, 16),
                       "Cache in fp8 or int8": (65_536, 130), "Cache in int4": (32_768, 260),
                       "Half the context (4,096 tokens)": (131_072, 130)}


def test_view_follows_its_controls():
    view = KVMemoryView()
    view.model_picker.value = "llama-3-70b"
    assert view.state.memory.bytes_per_token == 327_680 and view.state.sequences == 0
    assert "do not fit in 80 GiB" in view.summary.value
    view.weight_picker.value = "fp8"
    assert view.state.sequences == 5
    view.kv_picker.value = "int4"
    assert view.state.memory.bytes_per_token == 327_680 // 4
    assert "8 K/V heads × 128 values × ½ byte" in view.summary.value
    view.gpu_picker.value = 141
    view.batch_box.value = 3
    assert view.state.memory.total_bytes == 3 * 8_192 * 81_920 and "it fits in 141 GiB" in view.summary.value
    view.model_picker.value = "deepseek-v2-lite"
    assert "MLA" in view.summary.value and "27 layers × (512 + 64) values" in view.summary.value
    assert view.state.options[1].change == "Without MLA: a K and a V per head"
    view.context_box.value = 200_000
    assert "beyond this model's max_position_embeddings (163,840)" in view.summary.value
    assert "Sliding window" not in view.summary.value  # DeepSeek-V2-Lite has none


def test_view_notes_what_mistrals_sliding_window_would_keep():
    view = KVMemoryView()
    view.model_picker.value = "mistral-7b"
    assert CONFIGS["mistral-7b"]["sliding_window"] == 4_096  # Mistral-7B-v0.1's published config.json
    assert view.state.memory.per_sequence_bytes == 1 * GiB  # every one of 8,192 tokens counted, as a full cache does
    assert "attends only to the last 4,096 tokens" in view.summary.value and "keeps 512 MiB per sequence" in \
        view.summary.value  # 128 KiB * 4 Ki tokens
    view.context_box.value = 4_096
    assert "Sliding window" not in view.summary.value  # the window holds the whole context: nothing to note
    view.model_picker.value = "llama-3-8b"
    view.context_box.value = 8_192
    assert "Sliding window" not in view.summary.value


def test_the_lessons_table_and_the_calculator_use_one_gib_gpu():
    """Lesson 9 prints its table for an 80 GiB GPU; the calculator's default must give the same count."""
    view, llama3 = KVMemoryView(), kv_memory(CONFIGS["llama-3-8b"], 8_192)
    assert view.state.gpu_gib == 80 and view.state.sequences == llama3.sequences_that_fit(80 * GiB) == 65
    assert llama3.sequences_that_fit(80 * 10**9) == 59  # what the table's decimal 80 GB used to give


def test_view_shows_bad_input_instead_of_raising():
    view = KVMemoryView(KVMemoryState(model="llama-2-7b", gpu_gib=24))
    view.context_box.value = 0
    assert "context_tokens must be a whole number &gt;= 1, not 0" in view.errors.widget.value  # HTML-escaped
    assert view.state.error and view.state.memory is None and view.state.options == [] and view.summary.value == ""
    view.context_box.value = 4_096
    assert view.state.error == "" and view.state.memory.per_sequence_bytes == 2 * GiB  # 512 KiB * 4 Ki tokens
    view.batch_box.value = -1
    assert "batch must be" in view.state.error
