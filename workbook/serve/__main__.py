"""`python -m workbook.serve --model tiny --port 8000`: serve a model over OpenAI's API until interrupted (Ctrl-C)."""

from __future__ import annotations

import argparse

from ..errors import WorkbookError
from .app import DEFAULT_PAGE_SIZE, DEFAULT_PREFIX_CACHE_TOKENS, MAX_BODY_BYTES, create_app, load_server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m workbook.serve", description=__doc__)
    parser.add_argument("--model", default="tiny",
                        help="a shipped model name, a folder, or a .gguf file (default tiny); the `model` clients send")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    parser.add_argument("--prefix-cache-tokens", type=int, default=DEFAULT_PREFIX_CACHE_TOKENS,
                        help=f"the KV pool, shared by the prefix cache and running requests, in tokens "
                             f"(default {DEFAULT_PREFIX_CACHE_TOKENS}; 0: no prefix cache)")
    parser.add_argument("--page-size", type=int, default=DEFAULT_PAGE_SIZE,
                        help=f"tokens per KV page, the prefix cache's unit of reuse (default {DEFAULT_PAGE_SIZE})")
    parser.add_argument("--max-running", type=int, default=32, help="requests in one batch (default 32)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, or auto (default)")
    parser.add_argument("--max-body-bytes", type=int, default=MAX_BODY_BYTES,
                        help=f"larger request bodies get 413 (default {MAX_BODY_BYTES})")
    args = parser.parse_args(argv)
    try:
        server = load_server(args.model, prefix_cache_tokens=args.prefix_cache_tokens, page_size=args.page_size,
                             device=args.device, max_running=args.max_running)
    except WorkbookError as error:
        parser.error(str(error))
    import uvicorn

    print(f"Serving {args.model} at http://{args.host}:{args.port}/v1 (OpenAI API; /metrics for Prometheus)",
          flush=True)
    uvicorn.run(create_app(server, args.model, max_body_bytes=args.max_body_bytes), host=args.host, port=args.port,
                log_level="warning")


if __name__ == "__main__":
    main()
