"""The SQLite call cache and call log that wrap any teacher.

Every sample is keyed by a hash of (model, messages, options without `n`, sample index) and stored
with its text, finish reason, latency and token counts. A rerun of the same work reads the samples
from the database instead of calling the teacher: this is how generation resumes after a crash.
Every call (answered by the teacher or by the cache) is appended to the `calls` table with its
request hash, which `ChatResult.request_hash` carries into generation's metadata.

The database runs in WAL mode and commits each answer in its own transaction, so a `kill -9` at any
moment loses at most the answers in flight and never corrupts what is stored.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from graftlm.artifacts import hash_obj
from graftlm.errors import TeacherError
from graftlm.teacher.base import ChatResult, Completion, Message, SamplingOptions, Teacher, Usage

SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (
    key TEXT PRIMARY KEY,
    request_hash TEXT NOT NULL,
    sample_index INTEGER NOT NULL,
    model TEXT NOT NULL,
    text TEXT NOT NULL,
    finish_reason TEXT,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    latency_s REAL NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_hash TEXT NOT NULL,
    model TEXT NOT NULL,
    n INTEGER NOT NULL,
    cached INTEGER NOT NULL,
    latency_s REAL NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    time REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS calls_request ON calls(request_hash);
"""


def request_key(model: str, messages: list[Message], options: SamplingOptions) -> str:
    """The hash of one request, independent of how many samples it asks for."""
    opts = options.as_dict()
    opts.pop("n", None)
    return hash_obj({"model": model, "messages": messages, "options": opts})


def sample_key(request_hash: str, index: int) -> str:
    return hash_obj({"request": request_hash, "index": index})


class CallCache:
    """The SQLite database behind `CachedTeacher`: samples by key, and the call log."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(str(self.path), timeout=30, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
        except sqlite3.DatabaseError as e:
            raise TeacherError(f"cannot open the call cache {self.path}: {e}",
                               hint="delete the file to start a fresh cache (finished teacher calls are then redone)") from e

    def get(self, request_hash: str, n: int) -> list[sqlite3.Row] | None:
        """The first `n` samples of a request, or None when any is missing."""
        keys = [sample_key(request_hash, i) for i in range(n)]
        marks = ",".join("?" * n)
        with self._lock:
            cur = self._db.execute(
                f"SELECT key, text, finish_reason, prompt_tokens, completion_tokens, latency_s, model "
                f"FROM samples WHERE key IN ({marks})", keys)
            found = {row[0]: row for row in cur.fetchall()}
        if len(found) < n:
            return None
        return [found[k] for k in keys]

    def put(self, request_hash: str, result: ChatResult, per_sample_tokens: list[int]) -> None:
        now = time.time()
        rows = [
            (sample_key(request_hash, i), request_hash, i, result.model, c.text, c.finish_reason,
             result.usage.prompt_tokens, per_sample_tokens[i], result.latency_s, now)
            for i, c in enumerate(result.completions)
        ]
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany("INSERT OR REPLACE INTO samples VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def log_call(self, request_hash: str, result: ChatResult, n: int) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO calls (request_hash, model, n, cached, latency_s, prompt_tokens, completion_tokens, time) "
                "VALUES (?,?,?,?,?,?,?,?)",
                (request_hash, result.model, n, int(result.cached), result.latency_s, result.usage.prompt_tokens,
                 result.usage.completion_tokens, time.time()))

    def count(self, table: str = "samples") -> int:
        if table not in ("samples", "calls"):
            raise ValueError(table)
        with self._lock:
            return int(self._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    def calls(self) -> list[dict[str, Any]]:
        """The call log, oldest first."""
        with self._lock:
            cur = self._db.execute("SELECT request_hash, model, n, cached, latency_s, prompt_tokens, "
                                   "completion_tokens, time FROM calls ORDER BY id")
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def close(self) -> None:
        with self._lock:
            self._db.close()


class CachedTeacher:
    """Wraps a teacher with the call cache: answers from the database when every asked-for sample is
    stored, otherwise calls the teacher and stores its answers. Identical requests in flight at the
    same time share one teacher call."""

    def __init__(self, teacher: Teacher, path: Path) -> None:
        self.teacher = teacher
        self.model_id = teacher.model_id
        self.cache = CallCache(path)
        self.hits = 0
        self.misses = 0
        self.usage = Usage()
        self._inflight: dict[tuple[str, int], asyncio.Future[ChatResult]] = {}

    async def chat(self, messages: list[Message], options: SamplingOptions) -> ChatResult:
        rh = request_key(self.model_id, messages, options)
        start = time.perf_counter()
        stored = self.cache.get(rh, options.n)
        if stored is not None:
            self.hits += 1
            result = ChatResult(
                completions=tuple(Completion(r[1], r[2]) for r in stored),
                usage=Usage(stored[0][3], sum(r[4] for r in stored)),
                model=stored[0][6], latency_s=time.perf_counter() - start, request_hash=rh, cached=True,
            )
            self.cache.log_call(rh, result, options.n)
            return result
        key = (rh, options.n)
        if key in self._inflight:
            shared = await asyncio.shield(self._inflight[key])
            return ChatResult(shared.completions, shared.usage, shared.model, shared.latency_s, rh, cached=True)
        fut: asyncio.Future[ChatResult] = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        try:
            result = await self._call(rh, messages, options)
        except BaseException as e:
            if not fut.done():
                fut.set_exception(e)
                fut.exception()  # mark retrieved: waiters (if any) re-raise it themselves
            raise
        finally:
            self._inflight.pop(key, None)
        fut.set_result(result)
        return result

    async def _call(self, rh: str, messages: list[Message], options: SamplingOptions) -> ChatResult:
        self.misses += 1
        raw = await self.teacher.chat(messages, options)
        if len(raw.completions) != options.n:
            raise TeacherError(f"{self.model_id} returned {len(raw.completions)} completions for n={options.n}")
        result = ChatResult(raw.completions, raw.usage, raw.model or self.model_id, raw.latency_s, rh, cached=False)
        self.usage = self.usage + raw.usage
        self.cache.put(rh, result, split_tokens(raw.usage.completion_tokens, options.n))
        self.cache.log_call(rh, result, options.n)
        return result

    async def choice_logprobs(self, messages: list[Message], choices: tuple[str, ...]) -> dict[str, float] | None:
        """The wrapped teacher's verdict log-probabilities (`graftlm.judging`) through the cache; None when
        it cannot report them."""
        inner = getattr(self.teacher, "choice_logprobs", None)
        if inner is None:
            return None
        rh = hash_obj({"choices": list(choices), "request": request_key(self.model_id, messages, SamplingOptions())})
        stored = self.cache.get(rh, 1)
        if stored is not None:
            self.hits += 1
            value = json.loads(stored[0][1])
        else:
            self.misses += 1
            value = await inner(messages, choices)
            result = ChatResult((Completion(json.dumps(value), "logprobs"),), model=self.model_id, request_hash=rh)
            self.cache.put(rh, result, [0])
            self.cache.log_call(rh, result, 1)
        return None if value is None else {str(k): float(v) for k, v in value.items()}

    async def aclose(self) -> None:
        try:
            await self.teacher.aclose()
        finally:
            self.cache.close()


def split_tokens(total: int, n: int) -> list[int]:
    """Spread a request's completion tokens over its n samples (servers report only the sum)."""
    base, extra = divmod(total, n)
    return [base + (1 if i < extra else 0) for i in range(n)]
