"""`graft serve` under clients that misbehave, through raw sockets to a real server subprocess: an oversized
chunked body is refused with 413 while it streams in, a slow body gets 408, a client hanging up is counted
without a traceback, and connections beyond the cap get 503."""

from __future__ import annotations

import contextlib
import select
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from graftlm.testing.server import ServerFailed, running_server

LIMIT = 60_000
MAX_CONNECTIONS = 4
POST = b"POST /v1/chat/completions HTTP/1.1\r\nHost: graft\r\nContent-Type: application/json\r\n"


@pytest.fixture(scope="module")
def served(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    log = tmp_path_factory.mktemp("serve-limits") / "serve.log"
    args = ["--max-body-bytes", str(LIMIT), "--read-timeout", "1", "--max-connections", str(MAX_CONNECTIONS),
            "--device", "cpu", "--dtype", "float32", "--threads", "1"]
    try:
        with running_server(tiny_model, args, env={"OMP_NUM_THREADS": "1"}, log=log) as base:
            yield base, log
    except ServerFailed as e:
        pytest.fail(str(e))


@contextlib.contextmanager
def connect(base: str) -> Iterator[socket.socket]:
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=60)  # a safety net: every wait below is for a reply
    try:
        yield sock
    finally:
        sock.close()


def read_status(sock: socket.socket) -> tuple[int, bytes]:
    """The status code and everything the server sent until it finished the response or closed."""
    data = b""
    while b"\r\n\r\n" not in data:
        block = sock.recv(65536)
        if not block:
            break
        data += block
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0)
    while len(body) < length and (block := sock.recv(65536)):
        body += block
    return int(head.split(b" ")[1]), body


def test_oversized_chunked_body_gets_413_before_it_is_all_sent(served: tuple[str, Path]) -> None:
    base, _ = served
    cap = 256 << 20
    with connect(base) as sock:
        sock.sendall(POST + b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"x" * 16384
        sent = 0
        while sent < cap and not select.select([sock], [], [], 0)[0]:  # until the server answers
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except OSError:  # the server closed the connection after its answer
                break
            sent += len(chunk)
        if sent >= cap:
            sock.sendall(b"0\r\n\r\n")
        status, body = read_status(sock)
    assert status == 413 and b"request_too_large" in body and b"--max-body-bytes" in body
    assert sent < cap  # refused while streaming, not after reading 256 MB


def test_declared_oversized_body_gets_413_unread(served: tuple[str, Path]) -> None:
    base, _ = served
    with connect(base) as sock:
        sock.sendall(POST + b"Content-Length: %d\r\n\r\n" % (LIMIT + 1))
        status, body = read_status(sock)
    assert status == 413 and b"%d bytes" % (LIMIT + 1) in body


def test_slow_body_gets_408(served: tuple[str, Path]) -> None:
    base, _ = served
    with connect(base) as sock:
        sock.sendall(POST + b'Content-Length: 500\r\n\r\n{"messages": [')
        status, body = read_status(sock)
    assert status == 408 and b"--read-timeout" in body


def test_client_hanging_up_is_counted_without_a_traceback(served: tuple[str, Path]) -> None:
    base, log = served
    before = httpx.get(base + "/health").json()["client_disconnects"]
    with connect(base) as sock:
        sock.sendall(POST + b'Content-Length: 500\r\n\r\n{"messages": [')
    for _ in range(200):  # the server notices the hang-up on its own schedule: ask until it has
        health = httpx.get(base + "/health").json()
        if health["client_disconnects"] > before:
            break
    assert health["client_disconnects"] == before + 1
    assert "Traceback" not in log.read_text() and "Exception in ASGI" not in log.read_text()


def test_connections_beyond_the_cap_get_503(served: tuple[str, Path]) -> None:
    base, _ = served
    with contextlib.ExitStack() as stack:
        for _ in range(MAX_CONNECTIONS):
            stack.enter_context(connect(base))
        over = httpx.get(base + "/health")
    assert over.status_code == 503
    for _ in range(200):  # the held connections close on the server's schedule
        if httpx.get(base + "/health").status_code == 200:
            break
    assert httpx.get(base + "/health").status_code == 200
