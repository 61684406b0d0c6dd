"""The benchmark commands run end to end (tiny sizes, nothing saved); speed itself is never asserted."""

import pytest
import torch

from workbook.bench.__main__ import main


@pytest.fixture(scope="module")
def checkpoint_with_tokenizer(small_tokenizer, tmp_path_factory):
    """A small random Llama with a context long enough for the corpus's real system prompts."""
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("bench_model")
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(vocab_size=320, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                 num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096)
                     ).save_pretrained(folder)
    small_tokenizer.save(folder)
    return folder


def test_prefix_benchmark_runs_and_reports_both_engines(checkpoint_with_tokenizer, capsys):
    main(["prefix", "--quick", "--model", str(checkpoint_with_tokenizer), "--suffix", "8", "--budget", "8192"])
    out = capsys.readouterr().out
    assert "Time to first token" in out and "Workload replay" in out
    rows = [line.split() for line in out.splitlines() if line.strip().startswith(("64 ", "128 "))]
    assert len(rows) == 2 and all(r[3].endswith("x") and r[6].endswith("x") for r in rows)
    cached = next(line for line in out.splitlines() if line.strip().startswith("cached"))
    assert float(cached.split()[1].rstrip("%")) > 0  # shared system prompts do hit


def test_unknown_benchmark_is_refused():
    with pytest.raises(SystemExit):
        main(["nonsense"])


def test_help_after_a_benchmark_lists_that_benchmarks_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["prefix", "--help"])
    assert exit_info.value.code == 0 and "--prefix-lengths" in capsys.readouterr().out


def test_widget_benchmark_times_a_click_in_every_lesson_widget(capsys):
    payload = main(["widgets", "--quick"])
    out = capsys.readouterr().out
    lessons = {row["interaction"].split(":")[0] for row in payload["clicks"]}
    assert lessons == {f"lesson {n}" for n in range(1, 9)}
    assert all(row["median_s"] > 0 and row["repeats"] == 1 for row in payload["clicks"])
    assert sum(line.strip().startswith("lesson") and line.rstrip().endswith(("ms", "s")) for line in out.splitlines()) \
        == len(payload["clicks"])


def test_speculative_benchmark_runs_on_the_shipped_pair_and_matches_the_target(capsys):
    payload = main(["speculative", "--quick"])
    methods = {row["method"] for row in payload["draft_model"]}
    assert {"target only", "speculative k=1", "speculative k=4", "transformers assisted k=4"} <= methods
    assert payload["targets"]["all_greedy_outputs_identical"]
    assert 0 < payload["cost_ratio_c"] < 1  # the draft is cheaper than the target
    assert any(row["method"].startswith("speculative prompt lookup") for row in payload["prompt_lookup"])
    assert "Targets:" in capsys.readouterr().out


def test_the_cache_keyword_follows_the_installed_transformers():
    from workbook.bench.prefix import cache_argument

    class Older:  # transformers 5.20, the newest Python 3.10 gets
        def forward(self, input_ids, past_key_values=None, use_cache=None):
            pass

    class Newer:  # transformers 5.24 and later
        def forward(self, input_ids, cache=None, use_cache=None):
            pass

    assert cache_argument(Older()) == "past_key_values" and cache_argument(Newer()) == "cache"


def test_semantic_benchmark_times_the_embedding_and_the_search(capsys):
    payload = main(["semantic", "--quick"])
    assert list(payload["search"]) == ["1000"] and payload["search"]["1000"].repeats == 5
    assert payload["embed_one_query"].median_s > 0 and payload["dim"] == 384
    out = capsys.readouterr().out
    assert "embedding one query" in out and "search over   1,000 entries" in out


def test_serving_benchmark_reports_throughput_chunking_and_shared_pages(capsys):
    payload = main(["serving", "--quick"])
    assert [row["concurrency"] for row in payload["decode"]] == [1, 4]
    assert all(row["decode_tokens_per_s"] > 0 and row["inter_token_ms_p50"] > 0 for row in payload["decode"])
    assert [row["prefill_chunk"] for row in payload["mixed_load"].values()] == [None, 32]
    memory = payload["shared_prefix_memory"]
    assert memory["pages_shared_run"] == memory["pages_one_prefix_plus_own"] < memory["pages_unshared_run"]
    assert "requests on one 64-token prefix" in capsys.readouterr().out


def test_paged_steps_benchmark_times_every_eager_kind_and_profiles_one(capsys):
    payload = main(["paged-steps", "--quick", "--profile", "pages"])
    assert set(payload["median"]) == {"gather", "pages"}
    assert all(m[which]["tokens_per_s"] > 0 and m[which]["tokens_per_cpu_s"] > 0
               for m in payload["median"].values() for which in ("one", "concurrent"))
    assert "aten::mm" in payload["profile"]["table"] and "Where a decode step" in capsys.readouterr().out
