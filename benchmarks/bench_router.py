"""The library router's cost: a request for an unloaded model, and a swap between two models.

Run from the repository root::

    .venv/bin/python benchmarks/bench_router.py                  # 3 rounds, two ~140 MB models
    .venv/bin/python benchmarks/bench_router.py --rounds 5 --n-embd 1024 --n-layer 8

Cold start: the time from a request naming an unloaded model to its first streamed token, through
the router (llama-server in router mode, started from the presets file llamadash writes: the
router itself is already up, as it is for a user), beside the time from starting that model as its
own llama-server (spawn, ``/health`` 200, then the same request) to its first token. Medians over
the rounds, and their ratio (target: at most 1.2x).

The two alternate which comes first in each round (page cache, CPU frequency and other programs
weigh on both alike); the machine should be otherwise idle, or the figures are noise.

Swap: with ``--models-max 1``, the time from a request naming model B while A is loaded to B's
first token (the router unloads A, then loads B), both ways.

Poll: what one ``GET /models`` costs (round trip and JSON parse), as the dashboard polls it every
second while the router runs; and what one poll of a loaded model's figures through the router
costs (``/slots?model=`` and ``/metrics?model=``, round trips and parse), as the dashboard asks them
every second for each loaded model.

The models are llama GGUFs with random F32 weights (``tests/support.write_tiny_gguf``), big enough
that loading them takes real time. Exit status 0 when the ratio meets the target.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

RATIO_TARGET = 1.2
PROMPT = "Hello there, this is a benchmark"


def first_token_s(base: str, model: str | None, timeout: float = 300) -> float:
    """Seconds from sending a streamed completion to its first token."""
    body: dict[str, object] = {"prompt": PROMPT, "n_predict": 4, "stream": True, "ignore_eos": True}
    if model is not None:
        body["model"] = model
    request = urllib.request.Request(
        f"{base}/completion", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=timeout) as response:
        for raw in response:
            line = raw.decode("utf-8", "replace").strip()
            if line.startswith("data:") and '"content"' in line:
                elapsed = time.perf_counter() - started
                response.read()  # let it finish: the next round starts from a quiet server
                return elapsed
    raise RuntimeError(f"{model}: no token came")


def wait_health(base: str, proc: subprocess.Popen[bytes], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"llama-server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.01)
    raise RuntimeError("no /health 200")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def model_state(base: str, name: str) -> str:
    with urllib.request.urlopen(f"{base}/models", timeout=10) as response:
        for entry in json.load(response)["data"]:
            if entry["id"] == name:
                return str(entry["status"]["value"])
    return "missing"


def wait_unloaded(base: str, name: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while model_state(base, name) != "unloaded":
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not unload")
        time.sleep(0.05)


def post(base: str, path: str, body: dict[str, object]) -> None:
    request = urllib.request.Request(
        f"{base}{path}", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--n-embd", type=int, default=768)
    parser.add_argument("--n-layer", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n-ff", type=int, default=None, help="feed-forward size (default: 2 x n_embd)")
    args = parser.parse_args(argv)

    from support import free_port, write_tiny_gguf

    from llamadash.core.llama_server import find_llama_server
    from llamadash.core.params import probe_binary
    from llamadash.core.prometheus import parse_metrics
    from llamadash.core.router import RouterSettings, parse_models, plan_router
    from llamadash.core.throughput import parse_slots

    binary = str(find_llama_server().path)
    caps = probe_binary(binary)
    folder = Path(tempfile.mkdtemp(prefix="bench-router-"))
    files = {
        name: write_tiny_gguf(
            folder / f"{name}.gguf",
            name,
            n_embd=args.n_embd,
            n_layer=args.n_layer,
            n_head=8,
            n_ff=args.n_ff,
            n_ctx=2048,
        )
        for name in ("alpha", "beta")
    }
    size_mb = files["alpha"].stat().st_size / 2**20
    settings = {"ctx_size": 512, "threads": args.threads, "n_parallel": 1}
    models = [{"name": n, "type": "llama", "model_path": str(p), **settings} for n, p in files.items()]

    # the same flags as the router gives its child (from the presets file llamadash writes)
    single_args = ["--ctx-size", "512", "--threads", str(args.threads), "--parallel", "1", "--metrics"]
    direct: list[float] = []
    routed: list[float] = []
    again: list[float] = []
    swaps: list[float] = []
    polls: list[float] = []
    parses: list[float] = []
    figure_polls: list[float] = []
    figure_parses: list[float] = []

    def own_server() -> None:  # spawn, /health 200, the request
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        started = time.perf_counter()
        proc = subprocess.Popen(
            [binary, "-m", str(files["alpha"]), "--host", "127.0.0.1", "--port", str(port), *single_args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_health(base, proc)
            first_token_s(base, None)
            direct.append(time.perf_counter() - started)
        finally:
            stop(proc)

    def through_router() -> None:  # the router is up; the request loads the model
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        plan = plan_router(
            models,
            RouterSettings(port=port, max_models=1),
            caps,
            binary,
            preset_path=str(folder / "models.ini"),
        )
        (folder / "models.ini").write_text(plan.preset_text)
        proc = subprocess.Popen(list(plan.argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_health(base, proc)
            routed.append(first_token_s(base, "alpha"))  # the router's first load
            swaps.append(first_token_s(base, "beta"))  # unloads alpha (the limit is 1), loads beta
            swaps.append(first_token_s(base, "alpha"))
            post(base, "/models/unload", {"model": "alpha"})
            wait_unloaded(base, "alpha")
            again.append(first_token_s(base, "beta"))  # an unloaded model again, nothing to evict
            for _ in range(20):
                sent = time.perf_counter()
                with urllib.request.urlopen(f"{base}/models", timeout=10) as response:
                    body = response.read()
                got = time.perf_counter()
                parse_models(json.loads(body))
                polls.append((got - sent) * 1000)
                parses.append((time.perf_counter() - got) * 1000)
            query = "?model=beta&autoload=false"
            for _ in range(20):  # one poll of a loaded model's figures, through the router
                sent = time.perf_counter()
                with urllib.request.urlopen(f"{base}/slots{query}", timeout=10) as response:
                    slots = response.read()
                with urllib.request.urlopen(f"{base}/metrics{query}", timeout=10) as response:
                    metrics = response.read()
                got = time.perf_counter()
                parse_slots(json.loads(slots))
                parse_metrics(metrics.decode())
                figure_polls.append((got - sent) * 1000)
                figure_parses.append((time.perf_counter() - got) * 1000)
            post(base, "/models/unload", {"model": "beta"})
            wait_unloaded(base, "beta")
        finally:
            stop(proc)

    for index in range(args.rounds):  # the order alternates: neither side always comes first
        for step in (own_server, through_router) if index % 2 == 0 else (through_router, own_server):
            step()

    cold = routed + again
    ratio = statistics.median(cold) / statistics.median(direct)
    print(
        f"models: 2 x {size_mb:.0f} MB random-weight F32 GGUF (n_embd {args.n_embd}, n_layer {args.n_layer})"
    )
    print(f"rounds: {args.rounds}")
    print(f"own llama-server, spawn to first token:       median {statistics.median(direct) * 1000:7.0f} ms")
    print(f"router, request for unloaded model to token:  median {statistics.median(cold) * 1000:7.0f} ms")
    print(
        f"  (the router's first load: median {statistics.median(routed) * 1000:.0f} ms; "
        f"a later one: median {statistics.median(again) * 1000:.0f} ms)"
    )
    print(f"  router overhead: {(statistics.median(cold) - statistics.median(direct)) * 1000:+.0f} ms")
    print(f"ratio router / own server: {ratio:.2f}x (target <= {RATIO_TARGET}x)")
    print(f"swap (models-max 1), request to first token:  median {statistics.median(swaps) * 1000:7.0f} ms")
    print(
        f"GET /models poll: round trip median {statistics.median(polls):.2f} ms, "
        f"parse median {statistics.median(parses):.3f} ms"
    )
    print(
        f"a loaded model's figures (/slots + /metrics ?model=): round trips median "
        f"{statistics.median(figure_polls):.2f} ms, parse median {statistics.median(figure_parses):.3f} ms"
    )
    return 0 if ratio <= RATIO_TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
