"""A fleet's child processes: N `python -m workbook.serve` replicas on loopback ports and a real router in front.

The router is sglang-router or vllm-router (`pip install workbook[fleet]`; vllm-router is the same Rust family),
started as `python -m sglang_router.launch_router` (or `vllm_router.launch_router`). What sglang-router 0.3.2 does
with a worker, as seen here on 2026-12-06: it first tries the worker as a gRPC server
(an HTTP/2 preface, which uvicorn logs as "Invalid HTTP request received", twice per worker, at registration
only), then as HTTP; it reads `/health`, `/server_info` and `/model_info` (falling back to `/get_server_info`
and `/get_model_info`; a 404 leaves the model "unknown", which routes the same); and it re-serialises each
body it routes, adding SGLang's own fields at their defaults (the endpoint accepts those, see
`workbook.serve.protocol`). vllm-router 0.1.17 goes straight to HTTP and adds one more field. Each router's
Prometheus exporter is bound to 127.0.0.1 here, on a port of its own.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from ..errors import WorkbookError

# Each router: the module that launches it, the policies it offers, and how it spells "warnings only".
ROUTERS = {
    "sglang": ("sglang_router.launch_router", ("cache_aware", "round_robin", "power_of_two", "random"), "warn"),
    "vllm": ("vllm_router.launch_router", ("cache_aware", "round_robin", "power_of_two", "random", "consistent_hash"),
             "warning"),
}
POLICIES = tuple(dict.fromkeys(p for _, policies, _ in ROUTERS.values() for p in policies))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Child:
    """One child process, its address and its log file."""

    name: str
    url: str
    proc: subprocess.Popen
    log: Path

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            tail = self.log.read_text(errors="replace")[-2000:]
            raise WorkbookError(f"{self.name} exited with status {self.proc.returncode}; its log ends:\n{tail}")

    def stop(self, timeout: float = 20) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _spawn(name: str, args: list[str], url: str, logs: Path) -> Child:
    log = logs / f"{name}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", *args], stdout=out, stderr=subprocess.STDOUT,
                                env=dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1")))
    return Child(name, url, proc, log)


def start_replica(index: int, logs: Path, *, model: str, prefix_cache_tokens: int, page_size: int) -> Child:
    port = free_port()
    return _spawn(f"replica-{index}", ["workbook.serve", "--model", model, "--port", str(port),
                                       "--prefix-cache-tokens", str(prefix_cache_tokens), "--page-size",
                                       str(page_size), "--device", "cpu"], f"http://127.0.0.1:{port}", logs)


def start_router(router: str, policy: str, workers: list[str], logs: Path) -> Child:
    if router not in ROUTERS:
        raise WorkbookError(f"Unknown router {router!r}; this fleet runs: {', '.join(ROUTERS)}.")
    module, policies, quiet = ROUTERS[router]
    if policy not in policies:
        raise WorkbookError(f"Unknown policy {policy!r}; {router} offers: {', '.join(policies)}.")
    port = free_port()
    return _spawn(f"{router}-{policy}", [module, "--worker-urls", *workers, "--policy", policy, "--host", "127.0.0.1",
                                         "--port", str(port), "--prometheus-host", "127.0.0.1", "--prometheus-port",
                                         str(free_port()), "--log-level", quiet], f"http://127.0.0.1:{port}", logs)


def wait_until(ready, child: Child, seconds: float) -> None:
    """Poll `ready()` until it is true; fail early if `child` exits, or after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        child.check_alive()
        try:
            if ready():
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise WorkbookError(f"{child.name} was not ready after {seconds:.0f} s (log: {child.log}).")
        time.sleep(0.2)


def healthy(child: Child) -> bool:
    return httpx.get(child.url + "/health", timeout=2).status_code == 200


def routing_to(router: Child, n: int) -> bool:
    """The router lists `n` healthy workers."""
    workers = httpx.get(router.url + "/workers", timeout=2).json().get("workers", [])
    return len(workers) == n and all(w.get("is_healthy") for w in workers)


class Fleet:
    """N replicas, started together and stopped together (a context manager); routers come and go in front.

    With `worker_urls`, the replicas are servers already running elsewhere (other machines, each started with
    `python -m workbook.serve --host 0.0.0.0`): nothing is started but the router, and nothing else is stopped.
    """

    def __init__(self, replicas: int, *, model: str = "tiny", prefix_cache_tokens: int = 8192, page_size: int = 16,
                 start_seconds: float = 300, worker_urls: list[str] | None = None):
        if worker_urls is not None and (not worker_urls or len(set(worker_urls)) != len(worker_urls)):
            raise WorkbookError(f"Give one URL per replica, each once (http://host:port), not {worker_urls}.")
        self.logs = Path(tempfile.mkdtemp(prefix="workbook-fleet-"))
        self.settings = dict(model=model, prefix_cache_tokens=prefix_cache_tokens, page_size=page_size)
        self.count = len(worker_urls) if worker_urls else replicas
        self.start_seconds, self.worker_urls = start_seconds, worker_urls
        self.replicas: list[Child] = []

    @property
    def urls(self) -> list[str]:
        """Each replica's base URL, in order."""
        return self.worker_urls or [r.url for r in self.replicas]

    def __enter__(self) -> Fleet:
        if self.worker_urls:
            for url in self.worker_urls:
                self._check_remote(url)
            return self
        try:
            self.replicas = [start_replica(i, self.logs, **self.settings) for i in range(self.count)]
            for replica in self.replicas:
                wait_until(lambda: healthy(replica), replica, self.start_seconds)
        except BaseException:
            self.__exit__()
            raise
        return self

    def _check_remote(self, url: str) -> None:
        try:
            ok = httpx.get(url.rstrip("/") + "/health", timeout=10).status_code == 200
        except httpx.HTTPError as error:
            raise WorkbookError(f"The replica at {url} does not answer /health ({error}); is it serving?") from None
        if not ok:
            raise WorkbookError(f"The replica at {url} is not healthy (/health did not answer 200).")

    def __exit__(self, *exc) -> None:
        for replica in self.replicas:
            replica.stop()

    def router(self, router: str, policy: str) -> Child:
        """A router in front of every replica, once it routes to all of them (stop it when done)."""
        child = start_router(router, policy, self.urls, self.logs)
        try:
            wait_until(lambda: routing_to(child, self.count), child, 120)
        except BaseException:
            child.stop()
            raise
        return child
