"""Benchmark the HTTP teacher client against a fake OpenAI server with a fixed latency.

The server (a child process) answers every chat completion after `--latency` seconds, with unlimited
parallelism, so the ideal rate with N requests in flight is N / latency. The client (HttpTeacher,
`max_in_flight` N) sends `--requests` requests from twice as many workers as it lets through. Targets
(issue 3): at 64 in flight at least 90% of 64/latency req/s; resident memory flat over 10,000 requests.
`client CPU ms/req` is the client's own CPU time per request: one free core drives 1000/that req/s,
so on a busy machine the rate is bounded by the CPU share the client gets, not by the client's design.

    .venv/bin/python bench/teacher_client.py [--latency 0.25] [--requests 10000] [--in-flight 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from graftlm.teacher.base import SamplingOptions  # noqa: E402
from graftlm.teacher.http import HttpTeacher  # noqa: E402

ANSWER = json.dumps({
    "id": "x", "object": "chat.completion", "model": "fake",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "A fake answer."}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 4},
}).encode()


def serve(port: int, latency: float, ready: mp.synchronize.Event) -> None:  # type: ignore[name-defined]
    """A minimal HTTP/1.1 keep-alive server: every request is answered after `latency` seconds."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                if length:
                    await reader.readexactly(length)
                await asyncio.sleep(latency)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                             + str(len(ANSWER)).encode() + b"\r\n\r\n" + ANSWER)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=1024)
        ready.set()
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def drive(url: str, requests: int, in_flight: int) -> dict[str, float]:
    teacher = HttpTeacher([url], model_name="fake", max_in_flight=in_flight, max_retries=2, timeout_s=30)
    counter = iter(range(requests))
    marks: dict[int, float] = {}
    done = 0
    options = SamplingOptions(max_tokens=16)

    async def worker() -> None:
        nonlocal done
        for i in counter:
            await teacher.chat([{"role": "user", "content": f"question {i}"}], options)
            done += 1
            if done in (1000, requests // 2, requests):
                marks[done] = rss_mb()

    # Warm up the connections, then measure.
    await asyncio.gather(*[teacher.chat([{"role": "user", "content": "warm"}], options) for _ in range(in_flight)])
    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*[worker() for _ in range(2 * in_flight)])
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    await teacher.aclose()
    return {"elapsed": elapsed, "rate": requests / elapsed, "rss_1k": marks.get(1000, 0.0),
            "rss_half": marks.get(requests // 2, 0.0), "rss_end": marks.get(requests, 0.0),
            "completion_tokens": teacher.usage.completion_tokens, "cpu_ms": 1000 * cpu / requests}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--latency", type=float, default=0.25, help="server latency per request, seconds")
    ap.add_argument("--requests", type=int, default=10000)
    ap.add_argument("--in-flight", type=int, nargs="+", default=[8, 64])
    args = ap.parse_args()

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ready = mp.Event()
    server = mp.Process(target=serve, args=(port, args.latency, ready), daemon=True)
    server.start()
    ready.wait(10)
    url = f"http://127.0.0.1:{port}/v1"
    rows = []
    ok = True
    try:
        for n in args.in_flight:
            r = asyncio.run(drive(url, args.requests, n))
            ideal = n / args.latency
            growth = r["rss_end"] - r["rss_1k"]
            passed = r["rate"] >= 0.9 * ideal and growth < 20
            ok = ok and (passed or n != 64)
            rows.append([str(n), str(args.requests), f"{r['elapsed']:.1f}", f"{r['rate']:.0f}", f"{ideal:.0f}",
                         f"{100 * r['rate'] / ideal:.0f}%", f"{r['rss_1k']:.0f}", f"{r['rss_half']:.0f}",
                         f"{r['rss_end']:.0f}", f"{r['cpu_ms']:.2f}", "yes" if passed else "NO"])
    finally:
        server.terminate()
    headers = ["in flight", "requests", "seconds", "req/s", "ideal req/s", "of ideal", "RSS MB @1k",
               "RSS MB @half", "RSS MB @end", "client CPU ms/req", ">=90% & flat"]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    load = os.getloadavg()[0]
    print(f"HttpTeacher vs fake server, latency {args.latency * 1000:.0f} ms, {os.cpu_count()} CPUs, load {load:.1f}")
    print("  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True)))
    for r in rows:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
