"""Real models' shapes with random weights, the benchmarks that time them, and the prepared GPU run."""

import pytest
import torch

from workbook.bench.__main__ import main
from workbook.bench.gpu import fitting_lengths
from workbook.engine import Engine
from workbook.errors import WorkbookError
from workbook.paths import BENCHMARKS_DIR
from workbook.shapes import IdsTokenizer, random_model, read_shape, shape_names

# Parameter counts of the real checkpoints (tied embeddings counted once), as their model cards state them.
PUBLISHED_PARAMETERS = {"smollm2-135m": 134_515_008, "qwen2.5-0.5b": 494_032_768, "llama-3.2-1b": 1_235_814_400}


def test_every_shipped_shape_names_its_model_and_source():
    assert shape_names() == sorted(PUBLISHED_PARAMETERS)
    for name in shape_names():
        shape = read_shape(name)
        assert shape["source"].startswith("https://huggingface.co/") and shape["model"] in shape["source"]
        assert shape["config"]["model_type"] in ("llama", "qwen2")


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMETERS))
def test_a_random_model_has_the_real_models_parameter_count(name):
    """Built on the meta device (shapes only, no memory), each shape has exactly the real model's parameters."""
    assert random_model(name, device="meta").num_parameters() == PUBLISHED_PARAMETERS[name]


def test_a_random_model_runs_in_the_engine_and_keeps_its_shape_when_cut_to_fewer_layers():
    model = random_model("smollm2-135m", device="cpu", layers=2)
    full = read_shape("smollm2-135m")["config"]
    assert model.config.num_layers == 2 and model.config.hidden_size == full["hidden_size"]
    assert model.config.num_kv_heads == full["num_key_value_heads"] and model.config.vocab_size == full["vocab_size"]
    result = Engine(model, IdsTokenizer()).generate(list(range(40)), max_new_tokens=3, stop_at_eos=False)
    assert len(result.output_ids) == 3 and result.text == " ".join(map(str, result.output_ids))
    assert random_model("smollm2-135m", device="cpu", layers=2).state_dict()["lm_head.weight"].equal(
        model.state_dict()["lm_head.weight"])  # the same seed gives the same weights


def test_an_unknown_shape_is_refused_with_the_list():
    with pytest.raises(WorkbookError, match="smollm2-135m"):
        random_model("gpt-5")


def test_prefix_lengths_are_cut_to_whole_pages_that_fit_the_context():
    assert fitting_lengths(131072) == [2048, 8192, 32768]
    assert fitting_lengths(32768) == [2048, 8192, 32720]  # 32,720 + 32 suffix + 1 new token <= 32,768
    assert fitting_lengths(8192) == [2048, 8144]


def test_prefix_and_speculative_benchmarks_take_a_shape(capsys):
    payload = main(["prefix", "--shape", "smollm2-135m", "--prefix-lengths", "32", "--repeats", "1", "--no-save"])
    assert payload["shape"] == "smollm2-135m" and payload["parameters"] == PUBLISHED_PARAMETERS["smollm2-135m"]
    assert [row["prefix_tokens"] for row in payload["ttft"]] == [32] and payload["ttft"][0]["cold_s"] > 0
    payload = main(["speculative", "--shape", "smollm2-135m", "--ks", "1", "3", "--no-save"])
    assert set(payload["pass_ms"]) == {1, 2, 4} and set(payload["verify_ratio"]) == {1, 3}
    assert payload["verify_ratio"][3] == payload["pass_ms"][4] / payload["pass_ms"][1]
    assert capsys.readouterr().out.count("The weights are random") == 2


def test_the_gpu_run_does_every_step_on_the_cpu_in_a_dry_run(capsys):
    """--dry-run: the CUDA tests are collected and skipped (no GPU), each shape is timed at toy sizes, nothing saved."""
    before = sorted(BENCHMARKS_DIR.glob("*.json"))
    payload = main(["gpu", "--dry-run", "--shapes", "qwen2.5-0.5b", "--repeats", "1"])
    tests = payload["equivalence_tests"]
    if not torch.cuda.is_available():
        assert tests["returncode"] == 5 or tests["counts"].get("skipped", 0) >= 5  # 5: pytest ran no test
        assert "failed" not in tests["counts"]
    shape = payload["shapes"]["qwen2.5-0.5b"]
    assert shape["layers"] == 2 and [row["prefix_tokens"] for row in shape["ttft"]] == [64, 128]
    assert set(shape["verify_ratio"]) == {1, 2} and shape["decode_tokens_per_s"] > 0
    assert sorted(BENCHMARKS_DIR.glob("*.json")) == before and "nothing was saved" in capsys.readouterr().out


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_the_gpu_run_without_a_gpu_says_how_to_dry_run():
    with pytest.raises(WorkbookError, match="--dry-run"):
        main(["gpu"])
