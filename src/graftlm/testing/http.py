"""A real HTTP server on a loopback port whose replies a test scripts, for the client's failure paths.

`scripted_server(handle)` runs `http.server` in a thread; `handle(request, reply)` gets the parsed
request and a `Reply` that can send a JSON body, raw bytes, or bytes dribbled out slowly. Every request
is recorded. `openai_handler(teacher)` answers `/v1/models` and `/v1/chat/completions` from any teacher
(e.g. the fake one), so whole pipelines can run against a real socket."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from graftlm.teacher.base import SamplingOptions, Teacher


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: Any = None


@dataclass
class Reply:
    """Writes one response on the handler's socket."""

    handler: BaseHTTPRequestHandler
    done: threading.Event = field(default_factory=threading.Event)

    def raw(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.handler.send_response(status)
        self.handler.send_header("Content-Type", content_type)
        self.handler.send_header("Content-Length", str(len(body)))
        self.handler.end_headers()
        self.handler.wfile.write(body)

    def json(self, obj: Any, status: int = 200) -> None:
        self.raw(status, json.dumps(obj).encode())

    def dribble(self, body: bytes, every_s: float, stop: threading.Event) -> int:
        """Send the headers, then one byte every `every_s` seconds until done, `stop` is set or the client
        hangs up; returns the bytes of the body sent."""
        self.handler.send_response(200)
        self.handler.send_header("Content-Type", "application/json")
        self.handler.send_header("Content-Length", str(len(body)))
        self.handler.end_headers()
        for i in range(len(body)):
            if stop.wait(every_s):
                return i
            try:
                self.handler.wfile.write(body[i:i + 1])
                self.handler.wfile.flush()
            except OSError:  # the client hung up
                return i
        return len(body)


Handle = Callable[[Received, Reply], None]


@contextlib.contextmanager
def scripted_server(handle: Handle) -> Iterator[tuple[str, list[Received]]]:
    """Serve on 127.0.0.1 until the block ends; yields (`http://127.0.0.1:PORT`, requests received)."""
    received: list[Received] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw
            req = Received(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            received.append(req)
            handle(req, Reply(self))

        do_GET = do_POST = _serve  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="scripted-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


def openai_handler(teacher: Teacher, model: str = "scripted-model") -> Handle:
    """Answer `GET /v1/models` and `POST /v1/chat/completions` from `teacher` in OpenAI's shape."""

    def handle(req: Received, reply: Reply) -> None:
        if req.path.endswith("/models"):
            reply.json({"object": "list", "data": [{"id": model, "object": "model"}]})
            return
        body = req.body or {}
        options = SamplingOptions(temperature=body.get("temperature", 0.0), top_p=body.get("top_p", 1.0),
                                  max_tokens=body.get("max_tokens", 512), stop=tuple(body.get("stop") or ()),
                                  n=body.get("n", 1), seed=body.get("seed"))
        result = asyncio.run(teacher.chat(body["messages"], options))
        reply.json({
            "id": f"chatcmpl-{time.monotonic_ns()}", "object": "chat.completion", "model": model,
            "choices": [{"index": i, "message": {"role": "assistant", "content": c.text},
                         "finish_reason": c.finish_reason} for i, c in enumerate(result.completions)],
            "usage": {"prompt_tokens": result.usage.prompt_tokens,
                      "completion_tokens": result.usage.completion_tokens},
        })

    return handle
