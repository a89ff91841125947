"""Benchmark `graft serve` with batching: generated tokens per second at several concurrencies.

Starts `graft serve MODEL` (default: the embedded SmolLM2-135M-Instruct) as a subprocess on a free
loopback port, then for each concurrency C runs C clients (HttpTeacher) that each send requests back to
back, and reports aggregate generated tokens/s, requests/s, latency and the server's mean batch size
(from `/health`). Target (issue 3): 32 concurrent at least 3x the aggregate tokens/s of 1 at a time.

    .venv/bin/python bench/serve_throughput.py [--model default] [--concurrency 1 8 32] [--rounds 2] [--max-tokens 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from graftlm.teacher.base import SamplingOptions  # noqa: E402
from graftlm.teacher.http import HttpTeacher  # noqa: E402
from graftlm.testing.server import ServerFailed, running_server  # noqa: E402

TOPICS = ["rivers", "bread", "volcanoes", "chess", "bees", "glass", "trains", "tides", "paper", "owls", "salt",
          "clocks", "maps", "copper", "rain", "kites"]

async def level(url: str, concurrency: int, per_client: int, max_tokens: int) -> dict[str, float]:
    teacher = HttpTeacher([url + "/v1"], model_name="bench", max_in_flight=concurrency, max_retries=0,
                          timeout_s=600)
    latencies: list[float] = []

    async def client(c: int) -> None:
        for k in range(per_client):
            topic = TOPICS[(c + k) % len(TOPICS)]
            opts = SamplingOptions(temperature=0.7, max_tokens=max_tokens, seed=c * 1000 + k)
            start = time.perf_counter()
            await teacher.chat([{"role": "user", "content": f"Write a short paragraph about {topic}."}], opts)
            latencies.append(time.perf_counter() - start)

    before = httpx.get(url + "/health").json()
    start = time.perf_counter()
    await asyncio.gather(*[client(c) for c in range(concurrency)])
    elapsed = time.perf_counter() - start
    after = httpx.get(url + "/health").json()
    await teacher.aclose()
    calls = after["generate_calls"] - before["generate_calls"]
    return {"elapsed": elapsed, "tokens": teacher.usage.completion_tokens, "requests": len(latencies),
            "tok_s": teacher.usage.completion_tokens / elapsed, "req_s": len(latencies) / elapsed,
            "latency": sum(latencies) / len(latencies),
            "batch": (after["rows"] - before["rows"]) / max(calls, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--rounds", type=int, default=2, help="requests each client sends, back to back")
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--server-arg", action="append", default=[], help="extra `graft serve` argument (repeatable)")
    args = ap.parse_args()

    rows = []
    try:
        with running_server(args.model, args.server_arg, timeout_s=300) as url:
            asyncio.run(level(url, 4, 1, 8))  # warm-up
            for c in args.concurrency:
                rows.append((c, asyncio.run(level(url, c, args.rounds, args.max_tokens))))
    except ServerFailed as e:
        raise SystemExit(str(e)) from None
    base = rows[0][1]["tok_s"]
    print(f"graft serve {args.model}, max_tokens {args.max_tokens}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}")
    headers = ["concurrency", "requests", "gen tokens", "seconds", "tok/s", "req/s", "mean latency s",
               "mean batch", "x vs first"]
    table = [[str(c), str(r["requests"]), str(r["tokens"]), f"{r['elapsed']:.1f}", f"{r['tok_s']:.1f}",
              f"{r['req_s']:.2f}", f"{r['latency']:.2f}", f"{r['batch']:.1f}", f"{r['tok_s'] / base:.1f}x"]
             for c, r in rows]
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(headers)]
    print("  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True)))
    for t in table:
        print("  ".join(x.rjust(w) for x, w in zip(t, widths, strict=True)))
    last = rows[-1]
    ok = last[0] < 32 or last[1]["tok_s"] >= 3 * base
    print("target (32 concurrent >= 3x of 1):", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
