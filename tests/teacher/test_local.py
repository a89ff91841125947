"""LocalTeacher on the tiny random model: batching, sampling options, stop strings, context limits."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from graftlm.config.teacher import TeacherConfig
from graftlm.errors import TeacherError
from graftlm.teacher.base import SamplingOptions
from graftlm.teacher.batching import Batcher
from graftlm.teacher.factory import make_teacher
from graftlm.teacher.local import LocalTeacher, truncate_at_stop
from tests.needs import missing

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def teacher(tiny_model: Path) -> Any:
    torch.set_num_threads(2)
    t = make_teacher(TeacherConfig(model=str(tiny_model), device="cpu", dtype="float32", max_in_flight=16))
    assert isinstance(t, LocalTeacher)
    yield t
    asyncio.run(t.aclose())


def q(i: int) -> list[dict[str, str]]:
    return [{"role": "system", "content": "Be brief."}, {"role": "user", "content": f"Question number {i}?"}]


def test_concurrent_requests_are_batched(teacher: LocalTeacher) -> None:
    before = teacher.batcher.calls

    async def work() -> Any:
        return await asyncio.gather(*[teacher.chat(q(i), SamplingOptions(max_tokens=6)) for i in range(12)])

    results = asyncio.run(work())
    calls = teacher.batcher.calls - before
    assert len(results) == 12 and all(len(r.completions) == 1 for r in results)
    assert calls < 12  # batching actually batched
    assert sum(teacher.batcher.batch_sizes[before:]) == 12
    for r in results:
        assert r.usage.prompt_tokens > 0 and 0 < r.usage.completion_tokens <= 6
        assert r.completions[0].finish_reason in ("stop", "length")


def test_greedy_is_deterministic_and_seeded_sampling_reproducible(teacher: LocalTeacher) -> None:
    greedy = SamplingOptions(max_tokens=8)
    a = teacher.chat_sync(q(1), greedy)
    b = teacher.chat_sync(q(1), greedy)
    assert a.texts == b.texts
    sampled = SamplingOptions(max_tokens=12, temperature=1.0, n=4, seed=11)
    s1 = teacher.chat_sync(q(1), sampled)
    s2 = teacher.chat_sync(q(1), sampled)
    assert s1.texts == s2.texts and len(s1.texts) == 4
    assert len(set(s1.texts)) > 1  # n samples differ from each other
    other = teacher.chat_sync(q(1), SamplingOptions(max_tokens=12, temperature=1.0, n=4, seed=12))
    assert other.texts != s1.texts


def test_tiny_top_p_is_greedy(teacher: LocalTeacher) -> None:
    greedy = teacher.chat_sync(q(2), SamplingOptions(max_tokens=8))
    nucleus = teacher.chat_sync(q(2), SamplingOptions(max_tokens=8, temperature=1.5, top_p=1e-6, n=3, seed=1))
    assert nucleus.texts == greedy.texts * 3


def test_max_tokens_and_stop_strings(teacher: LocalTeacher) -> None:
    sampled = SamplingOptions(max_tokens=16, temperature=1.0, seed=5)
    full = teacher.chat_sync(q(3), sampled)
    assert full.completions[0].finish_reason == "length" and full.usage.completion_tokens == 16
    text = full.texts[0]
    stop = text[len(text) // 2:len(text) // 2 + 2]
    assert stop.strip(), f"tiny model produced too little text: {text!r}"
    cut = teacher.chat_sync(q(3), replace(sampled, stop=(stop, "never-there")))
    assert cut.texts[0] == text[:text.find(stop)]
    assert cut.completions[0].finish_reason == "stop"
    assert cut.usage.completion_tokens <= full.usage.completion_tokens


def test_truncate_at_stop() -> None:
    assert truncate_at_stop("a, b. c", (".", ",")) == ("a", True)
    assert truncate_at_stop("abc", ("x",)) == ("abc", False)
    assert truncate_at_stop("abc", ("",)) == ("abc", False)


def test_prompt_over_context_is_clear_error(tmp_path: Path) -> None:
    from graftlm.testing.tiny import build_tiny_model

    folder = build_tiny_model(tmp_path / "short", max_positions=64)
    small = LocalTeacher.from_config(TeacherConfig(model=str(folder), device="cpu", dtype="float32"))
    try:
        with pytest.raises(TeacherError) as err:
            small.chat_sync([{"role": "user", "content": "word " * 200}], SamplingOptions())
        assert "context of 64 tokens" in err.value.message and err.value.hint
        # A prompt that fits gets its answer clipped to the room left, not an error.
        ok = small.chat_sync([{"role": "user", "content": "hi"}], SamplingOptions(max_tokens=500))
        assert ok.usage.prompt_tokens + ok.usage.completion_tokens <= 64
    finally:
        asyncio.run(small.aclose())


def test_batcher_groups_waiting_rows_and_reports_errors() -> None:
    gate = threading.Event()

    def run_batch(rows: list[int]) -> list[int]:
        gate.wait(5)
        if -1 in rows:
            raise ValueError("bad row")
        return [r * 10 for r in rows]

    batcher: Batcher[int, int] = Batcher(run_batch, max_batch=4, wait_s=0.001)
    futures = [batcher.submit([i]) for i in range(9)]
    time.sleep(0.05)
    gate.set()
    assert [f.result(5) for f in futures] == [[i * 10] for i in range(9)]
    assert all(size <= 4 for size in batcher.batch_sizes) and batcher.calls < 9
    with pytest.raises(ValueError, match="bad row"):
        batcher.run_sync([-1])
    assert batcher.run_sync([2, 3]) == [20, 30]  # the worker survived the failure
    batcher.close()


def test_batcher_waits_for_clients_of_the_last_batch() -> None:
    batcher: Batcher[int, int] = Batcher(lambda rows: rows, max_batch=8, wait_s=0.1, straggler_s=1.0)
    first = [batcher.submit([i]) for i in range(4)]
    assert [f.result(5) for f in first] == [[0], [1], [2], [3]]
    assert batcher.batch_sizes == [4]
    later = []
    for i in range(4):  # the same four clients come back 20 ms apart
        later.append(batcher.submit([i]))
        time.sleep(0.02)
    assert [f.result(5) for f in later] == [[0], [1], [2], [3]]
    assert batcher.batch_sizes == [4, 4]  # one batch, not four
    batcher.close()


@pytest.mark.real_model
def test_left_padding_keeps_greedy_answers_on_the_embedded_model() -> None:
    """A short prompt batched with a long one (so it is left-padded) answers exactly as it does alone."""
    from graftlm.errors import ModelError

    try:
        t = LocalTeacher.from_config(TeacherConfig(model="default", device="cpu", dtype="float32"))
    except ModelError as e:
        missing(f"embedded model not available: {e}")
    options = SamplingOptions(max_tokens=10)
    short = [{"role": "user", "content": "What is 2+2?"}]
    long = [{"role": "user", "content": "Describe the history of Paris: its founding, growth and major events."}]
    t.batcher.wait_s = 0.5  # make sure the two requests below share a batch, even on a busy machine
    try:
        alone = t.chat_sync(short, options).texts

        async def both() -> Any:
            return await asyncio.gather(t.chat(short, options), t.chat(long, options))

        padded, _ = asyncio.run(both())
        assert t.batcher.batch_sizes[-1] == 2
        assert padded.texts == alone and "4" in alone[0]
    finally:
        asyncio.run(t.aclose())


def long_prompt(teacher: LocalTeacher, tokens: int) -> list[dict[str, str]]:
    """The longest user message of numbered words whose rendered prompt has at most `tokens` tokens."""
    def message(n: int) -> list[dict[str, str]]:
        return [{"role": "user", "content": " ".join(f"w{i}" for i in range(n))}]

    low, high = 1, tokens
    while low < high:  # the most words that fit
        mid = (low + high + 1) // 2
        low, high = (mid, high) if len(teacher.render(message(mid))) <= tokens else (low, mid - 1)
    return message(low)


def test_short_request_beside_a_long_one_is_not_cut_short(teacher: LocalTeacher) -> None:
    """A short request sharing the batcher with a long prompt gets the answer it gets alone: its tokens are
    not capped by the room the long prompt leaves in the context."""
    long = long_prompt(teacher, teacher.context_length - 100)
    assert len(teacher.render(long)) > teacher.context_length - 110
    short_options = SamplingOptions(max_tokens=150, temperature=1.0, seed=3)
    alone = teacher.chat_sync(q(7), short_options)
    assert alone.completions[0].finish_reason == "length" and alone.usage.completion_tokens == 150
    teacher.batcher.wait_s = 0.5  # give the two requests every chance to meet in the batcher
    try:
        async def both() -> Any:
            return await asyncio.gather(teacher.chat(long, SamplingOptions(max_tokens=20)),
                                        teacher.chat(q(7), short_options))

        before = teacher.batcher.calls
        long_result, short_result = asyncio.run(both())
    finally:
        teacher.batcher.wait_s = 0.005
    assert short_result.texts == alone.texts and short_result.usage.completion_tokens == 150
    assert long_result.usage.completion_tokens <= 20
    assert teacher.batcher.batch_sizes[before:] == [1, 1]  # they could not share a call


def test_batch_work_is_bounded_and_the_oldest_request_goes_first() -> None:
    """Rows that may not share a call (here: a long one with short ones, over the work bound) run in separate
    calls; a request that does not fit waits without holding up later ones, and leads the next call."""
    gate, started = threading.Event(), threading.Event()
    calls: list[list[int]] = []

    def run_batch(rows: list[int]) -> list[int]:
        started.set()
        gate.wait(5)
        calls.append(list(rows))
        return rows

    def fits(rows: list[int]) -> bool:  # a row's value is its cost; a call may cost 100 at most
        return len(rows) * max(rows) <= 100

    batcher: Batcher[int, int] = Batcher(run_batch, max_batch=8, wait_s=0.05, fits=fits)
    first = batcher.submit([5])  # occupies the worker until the gate opens; the others queue meanwhile
    assert started.wait(5)
    queued = [batcher.submit([r]) for r in (10, 90, 10, 10, 60)]
    gate.set()
    assert [f.result(5) for f in [first, *queued]] == [[5], [10], [90], [10], [10], [60]]
    assert calls[0] == [5]
    assert calls[1] == [10, 10, 10]  # the short ones together; 90 waits for the next call
    assert calls[2] == [90]  # the oldest of those left leads, alone: nothing else fits beside it
    assert calls[3] == [60]
    batcher.close()
