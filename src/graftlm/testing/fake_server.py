"""An OpenAI-compatible HTTP server in a thread of the test, answering through the fake teacher's responders.

It can hold requests from a point the test chooses (`hold(when)`): every request that arrives while
`when()` is true waits until the test releases it, and `holding` is set. A test that signals a client
while a request is held knows the client is mid-run: it cannot have finished in between.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from graftlm.teacher.base import SamplingOptions
from graftlm.teacher.fake import FakeTeacher, Responder


class FakeServer:
    """The server's state: what it answers with, and when it holds requests."""

    def __init__(self, responders: Sequence[Responder], model_id: str = "fake-teacher") -> None:
        self.teacher = FakeTeacher(responders, model_id=model_id)
        self.holding = threading.Event()
        """Set once a request is being held."""
        self.answered = 0
        self._lock = threading.Lock()
        self._when: Callable[[], bool] = lambda: False
        self._release = threading.Event()
        self.url = ""

    def hold(self, when: Callable[[], bool]) -> None:
        """From now on, hold every request that arrives while `when()` is true (releasing earlier ones)."""
        with self._lock:
            self._release.set()
            self._release = threading.Event()
            self.holding.clear()
            self._when = when

    def release(self) -> None:
        """Answer the held requests and hold no more."""
        self.hold(lambda: False)

    def _gate(self) -> None:
        with self._lock:
            if not self._when():
                return
            self.holding.set()
            release = self._release
        release.wait()

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        self._gate()
        options = SamplingOptions(temperature=float(body.get("temperature", 0.0)),
                                  top_p=float(body.get("top_p", 1.0)), max_tokens=int(body.get("max_tokens", 512)),
                                  stop=tuple(body.get("stop") or ()), n=int(body.get("n", 1)), seed=body.get("seed"))
        messages = body["messages"]
        texts = [self.teacher.answer(messages, options, i) for i in range(options.n)]
        with self._lock:
            self.answered += 1
        return {"id": f"fake-{self.answered}", "object": "chat.completion", "model": self.teacher.model_id,
                "choices": [{"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": "stop"}
                            for i, t in enumerate(texts)],
                "usage": {"prompt_tokens": sum(len(str(m.get("content", "")).split()) for m in messages),
                          "completion_tokens": sum(len(t.split()) for t in texts)}}


def _handler(state: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return None

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                pass  # the client is gone (killed by the test)

        def do_GET(self) -> None:
            if self.path.rstrip("/").endswith("/models"):
                self._send(200, {"object": "list", "data": [{"id": state.teacher.model_id, "object": "model"}]})
            else:
                self._send(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
            if not self.path.rstrip("/").endswith("/chat/completions"):
                self._send(404, {"error": {"message": f"no route {self.path}"}})
                return
            self._send(200, state.answer(body))

    return Handler


@contextmanager
def fake_server(responders: Sequence[Responder], model_id: str = "fake-teacher") -> Iterator[FakeServer]:
    """Serve on a free loopback port until the block ends; `server.url` is the `/v1` base URL."""
    state = FakeServer(responders, model_id)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release()
        httpd.shutdown()
        httpd.server_close()
        thread.join()
