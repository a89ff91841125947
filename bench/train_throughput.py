"""Training throughput of graftlm's packed trainer: real tokens/s, MFU and peak memory, per variant.

The GPU benchmark of issue 5: a 1.07B-parameter Llama-shaped model with random weights (hidden 2048,
16 layers, 32 heads, 8 KV heads, FFN 8192, vocabulary 49152, tied embeddings), samples with log-normal
lengths (mean about 670 tokens, at most 4096), 64k tokens per optimizer step, bf16 autocast with float32
master weights, full fine-tuning with fused AdamW, gradient clipping. Every step is the trainer's own:
`pack` and `build_row` make the rows, `row_loss_sum` the loss, `compile_layers` compiles, and the model
is loaded with the trainer's attention implementation. The data is made before the clock starts.

Variants (each a set of trainer settings; pick with --variants):
  baseline    sdpa (transformers' block-causal mask over the row), 8k rows, full logits: the reference
  varlen      varlen attention (PyTorch's FlashAttention varlen kernel; no mask)
  chunked_ce  + graftlm's chunked linear cross-entropy (no full logits), 4096-token chunks
  compile     + torch.compile of every decoder layer (dynamic shapes, attention outside the graph)
  rows_16k    + packed rows of 16384 tokens
  rows_32k    + packed rows of 32768 tokens
  liger_ce    rows_16k with liger-kernel's fused linear cross-entropy instead (when liger-kernel imports)
  rows_16k_gc rows_16k with gradient checkpointing (the memory-saving setting, for its cost)

MFU = (6 x params x tokens + 6 x hidden x layers x sum of squared sample lengths) / time / 989 TFLOP/s
(H100/H200 SXM dense bf16; causal attention counted once). Each variant runs in its own try block, so
an out-of-memory or a compiler failure is a row of the table, not the end of the run. On CPU, `--tiny`
runs a small model in seconds (a smoke test: the numbers mean nothing for a GPU), and `--shape smol`
compares variants for the embedded SmolLM2-135M on CPU (float32; MFU is then meaningless too).

    python bench/train_throughput.py --json results.json   # on a GPU (bench/gpu_check.sh runs it)
    python bench/train_throughput.py --shape smol --steps 1 --warmup 1 --variants baseline,varlen,chunked_ce
    python bench/train_throughput.py --tiny --steps 2       # anywhere
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import sys
import time
import traceback
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

PEAK_FLOPS = 989e12


@dataclass(frozen=True)
class Shape:
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    ffn: int
    vocab: int
    max_len: int
    mean_len: int
    tokens_per_step: int
    row_tokens: int
    chunk: int


FULL = Shape(2048, 16, 32, 8, 8192, 49152, 4096, 670, 65536, 8192, 4096)
TINY = Shape(64, 2, 4, 2, 128, 1024, 256, 48, 2048, 512, 256)
# SmolLM2-135M's shape (the embedded student) with the CPU trainer's default rows: for CPU comparisons
SMOL = Shape(576, 30, 9, 3, 1536, 49152, 1024, 300, 4096, 4096, 512)
SHAPES = {"full": FULL, "tiny": TINY, "smol": SMOL}


@dataclass(frozen=True)
class Variant:
    name: str
    attention: str
    rows: int  # row size as a multiple of shape.row_tokens
    loss: str  # full | chunked | liger
    compile: bool
    checkpointing: bool = False


VARIANTS = [
    Variant("baseline", "sdpa", 1, "full", False),
    Variant("varlen", "varlen", 1, "full", False),
    Variant("chunked_ce", "varlen", 1, "chunked", False),
    Variant("compile", "varlen", 1, "chunked", True),
    Variant("rows_16k", "varlen", 2, "chunked", True),
    Variant("rows_32k", "varlen", 4, "chunked", True),
    Variant("liger_ce", "varlen", 2, "liger", True),
    Variant("rows_16k_gc", "varlen", 2, "chunked", True, checkpointing=True),
]
BY_NAME = {v.name: v for v in VARIANTS}


def lengths(shape: Shape, n_tokens: int, rng: Any) -> list[int]:
    """Log-normal sample lengths (sigma 0.8, mean about shape.mean_len), clipped to [8, max_len], summing to
    at least n_tokens."""
    sigma = 0.8
    mu = math.log(shape.mean_len) - sigma**2 / 2
    out: list[int] = []
    while sum(out) < n_tokens:
        out.append(int(min(shape.max_len, max(8, rng.lognormvariate(mu, sigma)))))
    return out


def make_steps(shape: Shape, row_tokens: int, n_steps: int, seed: int) -> list[dict[str, Any]]:
    """The data of `n_steps` optimizer steps: packed rows (CPU tensors) and their token counts."""
    import torch

    from graftlm.train.packing import Rendered, build_row, pack

    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    steps = []
    for _ in range(n_steps):
        lens = lengths(shape, shape.tokens_per_step, rng)
        samples = []
        for n in lens:
            ids = torch.randint(3, shape.vocab, (n,), generator=gen).tolist()
            samples.append(Rendered.from_labels(ids, ids))
        rows = [build_row([samples[i] for i in r]) for r in pack(lens, row_tokens)]
        steps.append({"rows": rows, "tokens": sum(lens), "squares": sum(n * n for n in lens),
                      "trained": sum(s.trained_tokens for s in samples)})
    return steps


def build_model(shape: Shape, attention: str, device: str) -> Any:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if attention == "varlen":
        from graftlm.train.attention import register

        attention = register()
    cfg = LlamaConfig(vocab_size=shape.vocab, hidden_size=shape.hidden, intermediate_size=shape.ffn,
                      num_hidden_layers=shape.layers, num_attention_heads=shape.heads,
                      num_key_value_heads=shape.kv_heads, max_position_embeddings=shape.max_len,
                      tie_word_embeddings=True, use_cache=False)
    cfg._attn_implementation = attention
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(cfg)
    model.config.use_cache = False
    return model.train()


def liger_loss() -> Any:
    try:
        from liger_kernel.transformers.fused_linear_cross_entropy import LigerFusedLinearCrossEntropyLoss
    except Exception:  # ImportError, or triton missing/broken underneath
        return None
    return LigerFusedLinearCrossEntropyLoss(ignore_index=-100, reduction="sum")


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run_variant(v: Variant, shape: Shape, device: str, steps: int, warmup: int, seed: int) -> dict[str, Any]:
    import torch

    from graftlm.train.loop import compile_layers
    from graftlm.train.packing import row_hidden, row_loss_sum, row_to_device

    torch._dynamo.reset()  # each variant compiles (and is timed) on its own
    cuda = device.startswith("cuda")
    row_tokens = shape.row_tokens * v.rows
    result: dict[str, Any] = {"variant": v.name, "attention": v.attention, "row_tokens": row_tokens,
                              "loss": v.loss, "compile": v.compile, "checkpointing": v.checkpointing}
    liger = None
    if v.loss == "liger":
        liger = liger_loss()
        if liger is None:
            return {**result, "error": "liger-kernel not importable"}
    data = make_steps(shape, row_tokens, warmup + steps, seed)
    model = build_model(shape, v.attention, device)
    if v.checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if v.compile:
        compile_layers(model)
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, betas=(0.9, 0.95), fused=cuda)
    # bf16 on the GPU; float32 on CPU (bf16 matmuls there are slow without AMX and not what is measured)
    autocast = torch.autocast(device_type="cuda", dtype=torch.bfloat16) if cuda else nullcontext()
    chunk = shape.chunk if v.loss == "chunked" else None
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()

    def one_step(step: dict[str, Any]) -> float:
        total = step["trained"]
        loss_sum = torch.zeros((), device=device)
        for cpu_row in step["rows"]:
            row = row_to_device(cpu_row, device)
            with autocast:
                if liger is not None:
                    hidden = row_hidden(model, row)
                    loss = liger(model.lm_head.weight, hidden.view(-1, hidden.shape[-1]), row["targets"].view(-1))
                else:
                    loss = row_loss_sum(model, row, chunk)
            (loss / total).backward()
            loss_sum += loss.detach()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss_sum) / total  # one sync per step, as the trainer's log line does

    t0 = time.perf_counter()
    for step in data[:warmup]:
        one_step(step)
    _sync(device)
    result["warmup_s"] = time.perf_counter() - t0
    times: list[float] = []
    losses: list[float] = []
    for step in data[warmup:]:
        t = time.perf_counter()
        losses.append(one_step(step))
        _sync(device)
        times.append(time.perf_counter() - t)
    tokens = sum(s["tokens"] for s in data[warmup:])
    squares = sum(s["squares"] for s in data[warmup:])
    dt = sum(times)
    flops = 6 * params * tokens + 6 * shape.hidden * shape.layers * squares
    # on CPU the process's peak RSS only ever grows across variants: bench/train_memory.py measures CPU memory
    peak = torch.cuda.max_memory_allocated() if cuda else None
    rows_per_step = statistics.mean(len(s["rows"]) for s in data[warmup:])
    return {**result, "params": params, "tokens_per_s": tokens / dt, "mfu": flops / dt / PEAK_FLOPS,
            "peak_gib": None if peak is None else peak / 2**30, "step_s_median": statistics.median(times), "rows_per_step": rows_per_step,
            "loss_first": losses[0], "loss_last": losses[-1]}


def table(rows: list[dict[str, Any]]) -> list[str]:
    headers = ["variant", "attention", "row", "loss", "compile", "tokens/s", "MFU", "peak GiB", "step s",
               "warm-up s", "loss"]
    body = []
    for r in rows:
        if "error" in r:
            body.append([r["variant"], r["attention"], r["row_tokens"], r["loss"], r["compile"],
                         "-", "-", "-", "-", "-", "error: " + r["error"][:60]])
            continue
        body.append([r["variant"], r["attention"], r["row_tokens"], r["loss"], r["compile"],
                     f"{r['tokens_per_s']:.0f}", f"{100 * r['mfu']:.1f}%",
                     "-" if r["peak_gib"] is None else f"{r['peak_gib']:.1f}",
                     f"{r['step_s_median']:.3f}", f"{r['warmup_s']:.0f}", f"{r['loss_last']:.3f}"])
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *body, strict=False)]
    return ["  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True))
            for line in [headers, ["-" * w for w in widths], *body]]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=list(SHAPES), default="full",
                    help="full: the 1.07B GPU benchmark; smol: SmolLM2-135M's shape, 4096-token steps (CPU "
                    "comparisons, minutes); tiny: a smoke test in seconds")
    ap.add_argument("--tiny", action="store_true", help="the same as --shape tiny")
    ap.add_argument("--variants", default=None, help=f"comma list from {','.join(BY_NAME)} "
                    "(default: all on a GPU; baseline,varlen,chunked_ce on CPU)")
    ap.add_argument("--steps", type=int, default=5, help="measured optimizer steps")
    ap.add_argument("--warmup", type=int, default=2, help="unmeasured steps first (compilation, allocator)")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads")
    ap.add_argument("--json", default=None, help="also write every figure to this JSON file")
    args = ap.parse_args(argv)
    import torch

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    name = "tiny" if args.tiny else args.shape
    if device == "cpu" and name == "full":
        print("no GPU: use --shape smol (CPU comparison) or --tiny (smoke test)", file=sys.stderr)
        return 2
    shape = SHAPES[name]
    names = args.variants.split(",") if args.variants else (
        list(BY_NAME) if device == "cuda" else ["baseline", "varlen", "chunked_ce"])
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        print(f"unknown variant {unknown[0]!r}; choose from {', '.join(BY_NAME)}", file=sys.stderr)
        return 2
    gpu = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    model_name = {"full": "1.07B Llama-shaped", "smol": "SmolLM2-135M-shaped", "tiny": "tiny"}[name]
    header = (f"device: {gpu}; torch {torch.__version__}; model {model_name}; "
              f"{shape.tokens_per_step} tokens/step; {args.steps} measured steps after {args.warmup} warm-up")
    print(header, flush=True)
    results = []
    for n in names:
        try:
            r = run_variant(BY_NAME[n], shape, device, args.steps, args.warmup, seed=0)
        except Exception as e:  # OOM, compiler failure: a row of the table, and the next variant runs
            traceback.print_exc()
            v = BY_NAME[n]
            r = {"variant": n, "attention": v.attention, "row_tokens": shape.row_tokens * v.rows, "loss": v.loss,
                 "compile": v.compile, "error": f"{type(e).__name__}: {e}".splitlines()[0]}
        results.append(r)
        if device == "cuda":
            torch.cuda.empty_cache()
        if "error" in r:
            print(f"  {n}: {r['error']}", file=sys.stderr, flush=True)
        else:
            print(f"  {n}: {r['tokens_per_s']:.0f} tokens/s, MFU {100 * r['mfu']:.1f}%", file=sys.stderr, flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"header": header, "results": results}, f, indent=1)
    for line in table(results):
        print(line)
    return 0 if any("error" not in r for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
