"""`python -m workbook.bench {prefix,speculative,widgets,doctor,semantic,gpu,real-engine,serving,quantised,self-draft,fleet-sim,paged-steps} [options]`: measure, print, save."""

import argparse
import importlib

BENCHMARKS = {
    "prefix": "TTFT cold vs cached prefix, beside transformers' prompt reuse; a multi-user workload replay",
    "speculative": "speculative decoding vs target-only, beside transformers' assisted generation",
    "widgets": "what one click in each lesson widget costs on the shipped models",
    "doctor": "the cache doctor's time and peak memory on a synthetic log (--size 50MB), or its causes beside "
              "promptcachelint's on the example and pattern logs (--against promptcachelint)",
    "semantic": "the semantic cache's lookup time at 1,000, 10,000 and 100,000 entries",
    "gpu": "one prepared GPU run: the equivalence tests on CUDA, then TTFT, decode and pass costs at real shapes",
    "real-engine": "vLLM (CPU) or llama.cpp beside our engine on the shipped model: same greedy ids, cached tokens, "
                   "TTFT and decode speed (run with that engine's own Python)",
    "serving": "the batched server: decode throughput at 1-32 concurrent requests, chunked prefill under a mixed "
               "load, pool pages for 16 requests sharing a 1,024-token prefix",
    "quantised": "the real model's Q4_1 weights (dequantised) against bfloat16 weights and an int8 K/V cache: greedy "
                 "agreement, KL and bytes saved",
    "self-draft": "self-speculation on the real model: its first layers as its own draft (acceptance, speed)",
    "fleet-sim": "the fleet simulator: 10,000 requests routed over 4 to 256 replicas by each policy (CPU seconds)",
    "paged-steps": "decode at one request after 2,080 tokens and at 16 concurrent, for each way of running a paged "
                   "step (gather, pages, flex, compiled); --profile KIND shows where its time goes",
}


def main(argv=None) -> dict:
    # No help flag here, so `python -m workbook.bench prefix --help` reaches the chosen benchmark's options.
    parser = argparse.ArgumentParser(prog="python -m workbook.bench", description=__doc__, add_help=False,
                                     epilog="; ".join(f"{k}: {v}" for k, v in BENCHMARKS.items()))
    parser.add_argument("benchmark", nargs="?", choices=BENCHMARKS)
    chosen, rest = parser.parse_known_args(argv)
    if chosen.benchmark is None:
        parser.print_help()
        raise SystemExit(0 if {"-h", "--help"} & set(rest) else 2)
    module = importlib.import_module(f"workbook.bench.{chosen.benchmark.replace('-', '_')}")  # only the one asked for
    options = argparse.ArgumentParser(prog=f"python -m workbook.bench {chosen.benchmark}",
                                      description=BENCHMARKS[chosen.benchmark])
    module.add_arguments(options)
    return module.run(**vars(options.parse_args(rest)))  # argparse stops here: run() takes keyword arguments


if __name__ == "__main__":
    main()
