"""Benchmark generation concurrency: a 20-leaf taxonomy against a fake OpenAI-compatible server.

The server (uvicorn + FastAPI in a child process, on loopback) answers every chat completion after a
fixed latency with well-formed outputs for graftlm's generation prompts (the fake teacher's answers),
with unlimited parallelism. `graft generate`'s request pool should keep at least 90% of the configured
concurrency (`teacher.max_in_flight`) busy over the whole run (issue 4). Prints a table of requests,
requests per second, mean requests in flight and utilisation.

    .venv/bin/python bench/generate.py [--latency 0.5] [--in-flight 32] [--leaves 20] [--samples 30]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import os
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the seeds of tests/generate/conftest.py


def serve(port: int, latency: float, ready: mp.synchronize.Event) -> None:  # type: ignore[name-defined]
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from graftlm.generate.fake_responses import respond
    from graftlm.teacher.base import SamplingOptions

    async def models(request: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [{"id": "fake-teacher", "object": "model"}]})

    busy = {"in_flight": 0, "area": 0.0, "t": 0.0, "first": 0.0, "last": 0.0}

    def tick(delta: int) -> None:
        now = time.perf_counter()
        if busy["first"] == 0.0:
            busy["first"] = busy["t"] = now
        busy["area"] += busy["in_flight"] * (now - busy["t"])
        busy["t"] = busy["last"] = now
        busy["in_flight"] += delta

    async def stats(request: Request) -> JSONResponse:
        span = max(1e-9, busy["last"] - busy["first"])
        return JSONResponse({"mean_in_flight": busy["area"] / span, "span_s": span})

    async def chat(request: Request) -> JSONResponse:
        tick(+1)
        try:
            return await answer(request)
        finally:
            tick(-1)

    async def answer(request: Request) -> JSONResponse:
        body = await request.json()
        opts = SamplingOptions(temperature=float(body.get("temperature", 0.0)), n=int(body.get("n", 1)),
                               max_tokens=int(body.get("max_tokens", 256)))
        await asyncio.sleep(latency)
        texts = [respond(body["messages"], opts, i) or "A fake answer." for i in range(opts.n)]
        return JSONResponse({
            "id": "x", "object": "chat.completion", "model": "fake-teacher",
            "choices": [{"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": "stop"}
                        for i, t in enumerate(texts)],
            "usage": {"prompt_tokens": 100, "completion_tokens": sum(len(t.split()) for t in texts)}})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        ready.set()
        yield

    app = Starlette(routes=[Route("/v1/models", models), Route("/v1/chat/completions", chat, methods=["POST"]),
                            Route("/stats", stats)],
                    lifespan=lifespan)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", backlog=2048)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_taxonomy(root: Path, leaves: int) -> Path:
    """`leaves` leaves: mostly freeform skills, every fourth grounded, every fifth knowledge."""
    from tests.generate.conftest import DOC, FREEFORM_SEEDS, GROUNDED_SEEDS, KNOWLEDGE_SEEDS

    from graftlm.testing.taxonomy import docs_repo, write_leaf

    tax = root / "taxonomy"
    repo, commit = docs_repo(root / "docs-repo", {"brindle.md": DOC})
    for i in range(leaves):
        if i % 5 == 4:
            write_leaf(tax, f"knowledge/topic{i}", {
                "version": 3, "created_by": "bench", "domain": f"domain {i}", "document_outline": f"Document {i}.",
                "document": {"repo": str(repo), "commit": commit, "patterns": ["*.md"]},
                "seed_examples": [{"context": c, "questions_and_answers": [{"question": f"{q} ({i})", "answer": a}
                                                                          for q, a in qas]}
                                  for c, qas in KNOWLEDGE_SEEDS]})
        elif i % 4 == 3:
            write_leaf(tax, f"compositional_skills/grounded/skill{i}", {
                "version": 3, "created_by": "bench", "task_description": f"Grounded task number {i}.",
                "seed_examples": [{"context": f"{c} Case {i}.", "question": q, "answer": a} for q, a, c in GROUNDED_SEEDS]})
        else:
            write_leaf(tax, f"compositional_skills/writing/skill{i}", {
                "version": 3, "created_by": "bench", "task_description": f"Freeform task number {i}.",
                "seed_examples": [{"question": f"{q} (variant {i})", "answer": a} for q, a in FREEFORM_SEEDS]})
    return tax


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latency", type=float, default=0.5, help="server latency per request, seconds")
    ap.add_argument("--in-flight", type=int, default=32, help="teacher.max_in_flight")
    ap.add_argument("--leaves", type=int, default=20)
    ap.add_argument("--samples", type=int, default=30, help="generate.samples_per_leaf")
    args = ap.parse_args()

    from graftlm.artifacts import read_manifest
    from graftlm.config import GenerateConfig, Recipe, TeacherConfig
    from graftlm.generate.run import run_generate

    port = free_port()
    ready = mp.get_context("spawn").Event()
    server = mp.get_context("spawn").Process(target=serve, args=(port, args.latency, ready), daemon=True)
    server.start()
    if not ready.wait(30):
        print("the fake server did not start", file=sys.stderr)
        return 1
    try:
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["GRAFTLM_HOME"] = str(Path(tmp) / "home")
            tax = make_taxonomy(Path(tmp), args.leaves)
            recipe = Recipe(teacher=TeacherConfig(model=f"http://127.0.0.1:{port}/v1", model_name="fake-teacher",
                                                  max_in_flight=args.in_flight, api_key_env=None),
                            generate=GenerateConfig(samples_per_leaf=args.samples))
            t0 = time.perf_counter()
            out = run_generate(tax, Path(tmp) / "out", recipe, progress=False)
            wall = time.perf_counter() - t0
            m = read_manifest(out) or {}
            import httpx

            server_side = httpx.get(f"http://127.0.0.1:{port}/stats").json()
    finally:
        server.terminate()
        server.join(5)
    calls = m["calls"]["teacher"]
    ideal = args.in_flight / args.latency
    rows = [
        ("leaves", str(args.leaves)),
        ("samples kept (train.jsonl)", str(m["counts"]["train"])),
        ("teacher requests", str(calls["requests"])),
        ("wall time, whole run (s)", f"{wall:.1f}"),
        ("wall time, requests (s)", f"{calls['wall_s']:.1f}"),
        ("requests/s (ideal at full concurrency)", f"{calls['requests_per_s']:.1f} ({ideal:.0f})"),
        ("mean requests in flight", f"{calls['mean_in_flight']:.1f} of {args.in_flight}"),
        ("utilisation at the client", f"{100 * calls['utilisation']:.1f}% (target >= 90%)"),
        ("mean requests in flight at the server", f"{server_side['mean_in_flight']:.1f} "
                                                  f"({100 * server_side['mean_in_flight'] / args.in_flight:.1f}%)"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"generate benchmark: fake OpenAI server (uvicorn, loopback), latency {args.latency}s")
    for k, v in rows:
        print(f"  {k.ljust(width)}  {v}")
    return 0 if calls["utilisation"] >= 0.9 else 1


if __name__ == "__main__":
    raise SystemExit(main())
