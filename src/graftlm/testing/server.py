"""Start `graft serve` as a real subprocess on a free loopback port, for tests and benchmarks."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerFailed(RuntimeError):
    """`graft serve` exited or did not answer in time; the message holds its log."""


@contextlib.contextmanager
def running_server(model: str | Path, args: Sequence[str] = (), *, env: dict[str, str] | None = None,
                   unset: Sequence[str] = (), log: Path | None = None, timeout_s: float = 90.0,
                   port: int | None = None) -> Iterator[str]:
    """Run `python -m graftlm serve MODEL --port P *args` until the block ends; yields `http://127.0.0.1:P`.

    `env` adds to this process's environment, `unset` removes variables from it; `port` picks the port
    (default: a free one). Waits until `/health` answers; raises ServerFailed with the server's log if it exits or times out.
    The process is terminated (then killed) on exit."""
    import httpx

    port = port or free_port()
    base = f"http://127.0.0.1:{port}"
    full_env = {k: v for k, v in os.environ.items() if k not in unset}
    full_env.update(HF_HUB_OFFLINE="1", **(env or {}))
    if log is None:
        log = Path(tempfile.mkdtemp(prefix="graft-serve-")) / "serve.log"
    with log.open("w") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "graftlm", "serve", str(model), "--port", str(port), *args],
                                stdout=sink, stderr=subprocess.STDOUT, env=full_env)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise ServerFailed(f"graft serve exited with {proc.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise ServerFailed(f"graft serve did not come up within {timeout_s:.0f} s:\n{log.read_text()}")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
