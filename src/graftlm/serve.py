"""`graft serve`: a local model (the embedded default, a GGUF, any HF folder or trained checkpoint)
as an OpenAI-compatible server.

`GET /v1/models`, `POST /v1/chat/completions` (n, temperature, top_p, max_tokens, stop, seed), errors
in OpenAI's JSON shape. Requests arriving together are batched into one generation call by the
`LocalTeacher`'s batcher. With an API key, requests without `Authorization: Bearer <key>` get 401.
`ServeConfig` bounds what one client can take: a body is counted while it streams in (413 over the limit,
chunked or not), must arrive within a deadline (408), and connections beyond a cap get 503. A client
that hangs up is counted (`/health`), never a traceback. Prompts over the model's context get 400.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import ClientDisconnect

from graftlm.config.serve import ServeConfig
from graftlm.errors import TeacherError
from graftlm.teacher.base import SamplingOptions
from graftlm.teacher.local import LocalTeacher

log = logging.getLogger(__name__)

MAX_N = 64


class BodyTooLarge(Exception):
    def __init__(self, size: int, exact: bool) -> None:
        super().__init__(size)
        self.size, self.exact = size, exact


async def read_body(request: Request, limits: ServeConfig) -> bytes:
    """The request body, counted as it arrives: BodyTooLarge past `max_body_bytes` (without reading the
    rest), TimeoutError when it takes longer than `read_timeout_s`, ClientDisconnect if the client leaves."""
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limits.max_body_bytes:
        raise BodyTooLarge(int(length), exact=True)
    chunks: list[bytes] = []
    size = 0
    async with asyncio.timeout(limits.read_timeout_s):
        async for chunk in request.stream():
            size += len(chunk)
            if size > limits.max_body_bytes:
                raise BodyTooLarge(size, exact=False)
            chunks.append(chunk)
    return b"".join(chunks)


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: str
    content: str


class ChatRequest(BaseModel):
    """The part of OpenAI's chat-completions request that graft serve honours; other keys are ignored."""

    model_config = ConfigDict(extra="ignore")
    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    n: int = Field(default=1, ge=1, le=MAX_N)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False

    def options(self, default_max_tokens: int) -> SamplingOptions:
        stop = [self.stop] if isinstance(self.stop, str) else (self.stop or [])
        return SamplingOptions(temperature=self.temperature, top_p=self.top_p,
                               max_tokens=self.max_completion_tokens or self.max_tokens or default_max_tokens,
                               stop=tuple(stop), n=self.n, seed=self.seed)


def error(status: int, message: str, *, kind: str = "invalid_request_error", param: str | None = None,
          code: str | None = None) -> JSONResponse:
    """An error response in OpenAI's shape."""
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": code}},
                        status_code=status)


def create_app(teacher: LocalTeacher, *, api_key: str | None = None, limits: ServeConfig | None = None,
               default_max_tokens: int = 512) -> FastAPI:
    """The FastAPI app serving `teacher`. `api_key` None serves without authentication."""
    app = FastAPI(title="graft serve", docs_url=None, redoc_url=None, openapi_url=None)
    created = int(time.time())
    limits = limits or ServeConfig()
    disconnects = 0

    @app.middleware("http")
    async def check_auth(request: Request, call_next: Any) -> Any:
        if api_key and request.url.path.startswith("/v1/"):
            header = request.headers.get("authorization", "")
            token = header[7:].strip() if header[:7].lower() == "bearer " else ""
            if not hmac.compare_digest(token.encode(), api_key.encode()):
                return error(401, "missing or wrong API key: send `Authorization: Bearer <key>`",
                             kind="authentication_error", code="invalid_api_key")
        return await call_next(request)

    @app.exception_handler(404)
    async def not_found(request: Request, exc: Exception) -> JSONResponse:
        return error(404, f"no route {request.method} {request.url.path}; graft serve has /v1/models and "
                          "/v1/chat/completions", code="not_found")

    @app.exception_handler(405)
    async def bad_method(request: Request, exc: Exception) -> JSONResponse:
        return error(405, f"method {request.method} not allowed on {request.url.path}", code="method_not_allowed")

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """Liveness, plus how the batcher has been working (generate calls and rows so far)."""
        sizes = list(teacher.batcher.batch_sizes)
        return {"status": "ok", "model": teacher.model_id, "generate_calls": len(sizes), "rows": sum(sizes),
                "client_disconnects": disconnects}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [
            {"id": teacher.model_id, "object": "model", "created": created, "owned_by": "graftlm",
             "max_model_len": teacher.context_length}]}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Any:
        nonlocal disconnects
        try:
            raw = await read_body(request, limits)
        except BodyTooLarge as e:
            size = f"is {e.size} bytes," if e.exact else "goes (reading stopped there)"
            return error(413, f"request body {size} over the limit of {limits.max_body_bytes} bytes; "
                              "`graft serve --max-body-bytes` raises it", code="request_too_large")
        except TimeoutError:
            return error(408, f"the request body did not arrive within {limits.read_timeout_s:g} s; "
                              "`graft serve --read-timeout` raises it", code="request_timeout")
        except ClientDisconnect:
            disconnects += 1
            log.info("a client hung up while sending its request")
            return Response(status_code=499)  # nobody is listening any more
        try:
            req = ChatRequest.model_validate(json.loads(raw))
        except json.JSONDecodeError as e:
            return error(400, f"request body is not JSON: {e}")
        except ValidationError as e:
            first = e.errors()[0]
            param = ".".join(str(p) for p in first["loc"])
            return error(400, f"{param}: {first['msg']}", param=param)
        if req.stream:
            return error(400, "streaming is not supported by graft serve; send stream: false", param="stream")
        messages = [{"role": m.role, "content": m.content} for m in req.messages]
        try:
            rows = teacher.rows_for(messages, req.options(default_max_tokens))
        except TeacherError as e:
            code = "context_length_exceeded" if "context" in e.message else None
            return error(400, e.message, param="messages", code=code)
        start = time.perf_counter()
        try:
            outs = await teacher.batcher.run(rows)
        except TeacherError as e:
            log.warning("generation failed: %s", e.message)
            return error(500, e.message, kind="server_error")
        result = teacher.result(rows, outs, start)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": teacher.model_id,
            "choices": [{"index": i, "message": {"role": "assistant", "content": c.text},
                         "finish_reason": c.finish_reason} for i, c in enumerate(result.completions)],
            "usage": {"prompt_tokens": result.usage.prompt_tokens,
                      "completion_tokens": result.usage.completion_tokens,
                      "total_tokens": result.usage.prompt_tokens + result.usage.completion_tokens},
        }

    return app


def serve(teacher: LocalTeacher, *, host: str = "127.0.0.1", port: int = 8000, api_key: str | None = None,
          limits: ServeConfig | None = None) -> None:
    """Run the server until interrupted."""
    import uvicorn

    limits = limits or ServeConfig()
    app = create_app(teacher, api_key=api_key, limits=limits)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, timeout_graceful_shutdown=5,
                limit_concurrency=limits.max_connections, timeout_keep_alive=limits.keep_alive_s)
