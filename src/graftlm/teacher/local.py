"""A transformers model in this process as a teacher: HF folder, GGUF file or `default`.

Every request is rendered with the tokenizer's chat template and split into `n` rows (one per
sample). Rows of concurrent requests are batched by `graftlm.teacher.batching.Batcher` into one
left-padded `generate` call, but only rows whose prompts plus answers fit the context together, within
`max_batch_tokens` of padded work per call: no row's answer is cut short by a longer prompt beside it,
and a long prompt runs with few others instead of holding many short requests. Sampling happens in a logits processor, row by row, so each row keeps its
own temperature, top_p, seed and length limit inside a shared batch; a stopping criterion ends a
row at end-of-sequence, at its own `max_tokens`, or at one of its stop strings.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from typing import Any

from graftlm.config.teacher import TeacherConfig
from graftlm.errors import TeacherError
from graftlm.teacher.base import ChatResult, Completion, Message, SamplingOptions, Usage
from graftlm.teacher.batching import Batcher


@dataclass(frozen=True)
class Row:
    """One sample to generate: prompt token ids and its own sampling settings."""

    prompt_ids: tuple[int, ...]
    temperature: float
    top_p: float
    max_tokens: int
    stop: tuple[str, ...]
    seed: int


@dataclass(frozen=True)
class RowOutput:
    text: str
    finish_reason: str
    completion_tokens: int


def row_seed(seed: int | None, index: int) -> int:
    """The RNG seed of sample `index`: derived from the request seed, or random without one."""
    if seed is None:
        return int.from_bytes(os.urandom(8), "little") >> 1
    digest = hashlib.sha256(f"{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def truncate_at_stop(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    """Cut `text` at the first occurrence of any stop string; True when one was found."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    if cut < 0:
        return text, False
    return text[:cut], True


def context_length(model: Any) -> int:
    cfg = model.config
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(cfg, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return 2048


class LocalTeacher:
    """A local causal LM answering chat requests, with concurrent requests batched together."""

    def __init__(self, model: Any, tokenizer: Any, *, model_id: str, max_batch: int = 32,
                 wait_s: float = 0.005, max_batch_tokens: int = 65536) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.model_id = model_id
        self.context_length = context_length(model)
        self.usage = Usage()
        eos = getattr(model.generation_config, "eos_token_id", None) or tokenizer.eos_token_id
        self.eos_ids = frozenset(eos if isinstance(eos, list) else [eos])
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.eos_ids)
        self.max_batch_tokens = max_batch_tokens
        self.batcher: Batcher[Row, RowOutput] = Batcher(self._generate_rows, max_batch=max_batch, wait_s=wait_s,
                                                        name=f"graft-generate-{model_id}", fits=self.fits)

    @classmethod
    def from_config(cls, config: TeacherConfig) -> LocalTeacher:
        from graftlm.models import load_model, resolve

        ref = resolve(config.model.strip())
        if config.cpu_threads:
            import torch

            torch.set_num_threads(config.cpu_threads)
        model, tokenizer = load_model(config.model.strip(), device=config.device, dtype=config.dtype)
        return cls(model, tokenizer, model_id=ref.name, max_batch=config.max_in_flight,
                   max_batch_tokens=config.max_batch_tokens)

    # -- requests ---------------------------------------------------------------------------------

    def fits(self, rows: list[Row]) -> bool:
        """Whether rows may share one generate call: left-padded to the longest prompt, every row still has
        room for its own `max_tokens`, and the call's padded tokens stay within `max_batch_tokens`."""
        width = max(len(r.prompt_ids) for r in rows) + max(r.max_tokens for r in rows)
        return width <= self.context_length and len(rows) * width <= self.max_batch_tokens

    def render(self, messages: list[Message]) -> list[int]:
        """Token ids of the chat-template prompt for `messages`, ending with the assistant header."""
        if not messages:
            raise TeacherError("a chat request needs at least one message")
        try:
            text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        except Exception as e:
            raise TeacherError(f"cannot render the chat template of {self.model_id}: {e}",
                               hint="check the roles and contents of the messages") from e
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def rows_for(self, messages: list[Message], options: SamplingOptions) -> list[Row]:
        """The rows of one request, after checking it fits the model's context."""
        ids = self.render(messages)
        room = self.context_length - len(ids)
        if room < 1:
            raise TeacherError(
                f"the prompt is {len(ids)} tokens but {self.model_id} has a context of {self.context_length} tokens",
                hint="shorten the messages (smaller documents or chunks, fewer examples), or use a model with a longer context",
            )
        if options.n < 1:
            raise TeacherError(f"n must be at least 1, got {options.n}")
        if options.max_tokens < 1:
            raise TeacherError(f"max_tokens must be at least 1, got {options.max_tokens}")
        max_tokens = min(options.max_tokens, room)
        return [Row(tuple(ids), float(options.temperature), float(options.top_p), max_tokens, tuple(options.stop),
                    row_seed(options.seed, i)) for i in range(options.n)]

    def result(self, rows: list[Row], outs: list[RowOutput], start: float) -> ChatResult:
        usage = Usage(len(rows[0].prompt_ids), sum(o.completion_tokens for o in outs))
        self.usage = self.usage + usage
        return ChatResult(
            completions=tuple(Completion(o.text, o.finish_reason) for o in outs),
            usage=usage, model=self.model_id, latency_s=time.perf_counter() - start,
        )

    async def chat(self, messages: list[Message], options: SamplingOptions) -> ChatResult:
        start = time.perf_counter()
        rows = self.rows_for(messages, options)
        outs = await self.batcher.run(rows)
        return self.result(rows, outs, start)

    def chat_sync(self, messages: list[Message], options: SamplingOptions) -> ChatResult:
        """The same as `chat`, for callers without an event loop."""
        start = time.perf_counter()
        rows = self.rows_for(messages, options)
        return self.result(rows, self.batcher.run_sync(rows), start)

    async def aclose(self) -> None:
        self.batcher.close()

    # -- the batched generate call (runs in the batcher's thread) ----------------------------------

    def _generate_rows(self, rows: list[Row]) -> list[RowOutput]:
        import torch
        from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

        device = next(self.model.parameters()).device
        width = max(len(r.prompt_ids) for r in rows)
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):  # left padding: prompts end at the same column
            input_ids[i, width - len(r.prompt_ids):] = torch.tensor(r.prompt_ids, dtype=torch.long)
            attention[i, width - len(r.prompt_ids):] = 1
        input_ids, attention = input_ids.to(device), attention.to(device)
        max_new = max(r.max_tokens for r in rows)
        if width + max_new > self.context_length:  # `fits` keeps batches from this; one request alone never
            raise TeacherError(f"a batch of {width} prompt and {max_new} new tokens is over the context of "
                               f"{self.model_id} ({self.context_length} tokens)")
        sampler = RowSampler(rows, device)
        stopper = RowStopper(rows, width, self.eos_ids, self.tokenizer)
        config = GenerationConfig(max_new_tokens=max_new, do_sample=False, pad_token_id=self.pad_id,
                                  eos_token_id=sorted(self.eos_ids), num_beams=1)
        try:
            with torch.inference_mode():
                self.model.generate(input_ids=input_ids, attention_mask=attention, generation_config=config,
                                    logits_processor=LogitsProcessorList([sampler]),
                                    stopping_criteria=StoppingCriteriaList([stopper]))
        except TeacherError:
            raise
        except Exception as e:
            raise TeacherError(f"generation with {self.model_id} failed: {e}") from e
        outs = []
        for i, r in enumerate(rows):
            ids = stopper.tokens[i]
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            text, hit = truncate_at_stop(text, r.stop)
            reason = "stop" if hit or stopper.reasons[i] == "stop" else "length"
            outs.append(RowOutput(text, reason, len(ids)))
        return outs


class RowSampler:
    """A logits processor that picks every row's next token itself (its own temperature, top_p and
    seeded generator) and leaves only that token possible, so greedy decoding takes it."""

    def __init__(self, rows: list[Row], device: Any) -> None:
        import torch

        self.temps = torch.tensor([r.temperature for r in rows], dtype=torch.float32, device=device)
        self.top_p = torch.tensor([r.top_p for r in rows], dtype=torch.float32, device=device)
        self.generators = [torch.Generator(device=device).manual_seed(r.seed) for r in rows]
        self.greedy = [r.temperature <= 0 for r in rows]
        self.nucleus = any(r.top_p < 1.0 and r.temperature > 0 for r in rows)

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        scores = scores.float()
        picked = scores.argmax(dim=-1)
        if not all(self.greedy):
            probs = torch.softmax(scores / self.temps.clamp(min=1e-5)[:, None], dim=-1)
            if self.nucleus:  # top_p < 1 somewhere: sample from the sorted, truncated distribution
                sorted_p, order = probs.sort(dim=-1, descending=True)
                cum = sorted_p.cumsum(dim=-1)
                probs = sorted_p.masked_fill(cum - sorted_p > self.top_p[:, None], 0.0)
            for i, greedy in enumerate(self.greedy):
                if not greedy:
                    j = torch.multinomial(probs[i], 1, generator=self.generators[i])[0]
                    picked[i] = order[i, j] if self.nucleus else j
        out = torch.full_like(scores, float("-inf"))
        out.scatter_(1, picked[:, None], 0.0)
        return out


class RowStopper:
    """A stopping criterion that ends each row at end-of-sequence, its own max_tokens, or a stop string,
    and remembers the generated tokens of every row up to that point."""

    def __init__(self, rows: list[Row], prompt_width: int, eos_ids: frozenset[int], tokenizer: Any) -> None:
        self.rows = rows
        self.width = prompt_width
        self.eos_ids = eos_ids
        self.tokenizer = tokenizer
        self.tokens: list[list[int]] = [[] for _ in rows]
        self.reasons: list[str | None] = [None for _ in rows]
        self.tail = [max((len(s) for s in r.stop), default=0) + 4 for r in rows]

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        last = input_ids[:, -1].tolist()
        done = []
        for i, r in enumerate(self.rows):
            if self.reasons[i] is None:
                tok = last[i]
                if tok in self.eos_ids:
                    self.reasons[i] = "stop"
                else:
                    self.tokens[i].append(tok)
                    if r.stop:
                        tail = self.tokenizer.decode(self.tokens[i][-self.tail[i]:], skip_special_tokens=True)
                        if any(s and s in tail for s in r.stop):
                            self.reasons[i] = "stop"
                    if self.reasons[i] is None and len(self.tokens[i]) >= r.max_tokens:
                        self.reasons[i] = "length"
            done.append(self.reasons[i] is not None)
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)
