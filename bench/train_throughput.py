"""Training throughput of graftlm's packed trainer: real tokens/s, MFU and peak memory, per variant.

The GPU benchmark of issue 5: a 1.07B-parameter Llama-shaped model with random weights (hidden 2048,
16 layers, 32 heads, 8 KV heads, FFN 8192, vocabulary 49152, tied embeddings), samples with log-normal
lengths (mean about 670 tokens, at most 4096), 64k tokens per optimizer step, bf16 autocast, full
fine-tuning with AdamW. Every step uses the trainer's own pieces (`pack`, `build_row`, `row_loss_sum`).

Variants (cumulative, in this order; pick with --variants):
  baseline   packed rows of 8192 tokens, SDPA (transformers builds the block-causal mask), full logits
  varlen     + flash_attention_2 varlen when flash-attn is installed, else flex_attention
  fused_ce   + chunked linear cross-entropy (liger-kernel's fused kernel when installed, else graftlm's)
  compile    + torch.compile of every decoder layer
  big_rows   + rows of 16384 tokens

MFU = (6 x params x tokens + 6 x hidden x layers x sum of squared sample lengths) / time / peak FLOP/s
(989 TFLOP/s: H100 SXM dense bf16). On CPU, `--tiny` runs a small model in seconds (a smoke test, the
numbers mean nothing for a GPU).

    python bench/train_throughput.py                  # on a GPU
    python bench/train_throughput.py --tiny --steps 2 # anywhere
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import sys
import time
from dataclasses import dataclass
from typing import Any

VARIANTS = ["baseline", "varlen", "fused_ce", "compile", "big_rows"]


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


FULL = Shape(2048, 16, 32, 8, 8192, 49152, 4096, 670, 65536, 8192)
TINY = Shape(64, 2, 4, 2, 128, 1024, 256, 48, 2048, 512)


def lengths(shape: Shape, n_tokens: int, rng: Any) -> list[int]:
    """Log-normal sample lengths (sigma 0.8, mean about shape.mean_len), clipped to [8, max_len], summing to
    at least n_tokens."""
    sigma = 0.8
    mu = math.log(shape.mean_len) - sigma**2 / 2
    out: list[int] = []
    while sum(out) < n_tokens:
        out.append(int(min(shape.max_len, max(8, rng.lognormvariate(mu, sigma)))))
    return out


def build_model(shape: Shape, attention: str, device: str) -> Any:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

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


def pick_attention(device: str) -> str:
    if device.startswith("cuda"):
        try:
            import flash_attn  # noqa: F401

            return "flash_attention_2"
        except ImportError:
            pass
        return "flex_attention"
    return "sdpa"  # flex_attention has no backward on CPU; the smoke test keeps SDPA


def liger_loss() -> Any:
    try:
        from liger_kernel.transformers.fused_linear_cross_entropy import LigerFusedLinearCrossEntropyLoss
    except ImportError:
        return None
    return LigerFusedLinearCrossEntropyLoss(ignore_index=-100, reduction="sum")


def run_variant(name: str, shape: Shape, device: str, steps: int, warmup: int, seed: int) -> dict[str, Any]:
    import random

    import torch

    from graftlm.train.packing import Rendered, build_row, pack, row_loss_sum

    level = VARIANTS.index(name)
    attention = pick_attention(device) if level >= 1 else "sdpa"
    model = build_model(shape, attention, device)
    if level >= 3:
        for layer in model.model.layers:
            layer.compile(dynamic=True)
    row_tokens = shape.row_tokens * (2 if level >= 4 else 1)
    chunk = 4096 if level >= 2 else None
    liger = liger_loss() if level >= 2 and device.startswith("cuda") else None
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, betas=(0.9, 0.95),
                            fused=device.startswith("cuda"))
    from contextlib import nullcontext

    # bf16 on the GPU; float32 on CPU (bf16 matmuls there are slow without AMX and not what is measured)
    autocast = torch.autocast(device_type="cuda", dtype=torch.bfloat16) if device.startswith("cuda") else nullcontext()
    rng = random.Random(seed)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()

    def one_step() -> tuple[int, int]:
        lens = lengths(shape, shape.tokens_per_step, rng)
        samples = []
        for n in lens:
            ids = [rng.randrange(3, shape.vocab) for _ in range(n)]
            samples.append(Rendered.from_labels(ids, ids))
        rows = pack(lens, row_tokens)
        total = sum(s.trained_tokens for s in samples)
        for r in rows:
            row = {k: v.to(device) for k, v in build_row([samples[i] for i in r]).items()}
            with autocast:
                if liger is not None:
                    hidden = model.get_decoder()(input_ids=row["input_ids"], position_ids=row["position_ids"])[0]
                    loss = liger(model.lm_head.weight, hidden.view(-1, hidden.shape[-1]), row["targets"].view(-1))
                else:
                    loss = row_loss_sum(model, row, chunk)
            (loss / total).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return sum(lens), sum(n * n for n in lens)

    for _ in range(warmup):
        one_step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    tokens = sq = 0
    for _ in range(steps):
        t, s = one_step()
        tokens += t
        sq += s
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    flops = 6 * params * tokens + 6 * shape.hidden * shape.layers * sq
    peak = (torch.cuda.max_memory_allocated() if device.startswith("cuda")
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {"variant": name, "attention": attention, "row_tokens": row_tokens,
            "loss": "liger" if liger else ("chunked" if chunk else "full"), "params": params,
            "tokens_per_s": tokens / dt, "mfu": flops / dt / PEAK_FLOPS, "peak_gib": peak / 2**30}


PEAK_FLOPS = 989e12


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="a tiny model on any device: a smoke test in seconds")
    ap.add_argument("--variants", default=None, help=f"comma list from {','.join(VARIANTS)} "
                    "(default: all on a GPU; baseline,varlen,fused_ce with --tiny on CPU)")
    ap.add_argument("--steps", type=int, default=5, help="measured optimizer steps")
    ap.add_argument("--warmup", type=int, default=2, help="unmeasured steps first (compilation, allocator)")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads")
    args = ap.parse_args(argv)
    import torch

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" and not args.tiny:
        print("no GPU: run with --tiny for a CPU smoke test", file=sys.stderr)
        return 2
    shape = TINY if args.tiny else FULL
    default = VARIANTS if device == "cuda" else VARIANTS[:3]
    names = args.variants.split(",") if args.variants else default
    for n in names:
        if n not in VARIANTS:
            print(f"unknown variant {n!r}; choose from {', '.join(VARIANTS)}", file=sys.stderr)
            return 2
    gpu = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    print(f"device: {gpu}; model {'tiny' if args.tiny else '1.07B Llama-shaped'}; "
          f"{shape.tokens_per_step} tokens/step; {args.steps} measured steps after {args.warmup} warm-up")
    rows = []
    for n in names:
        r = run_variant(n, shape, device, args.steps, args.warmup, seed=0)
        rows.append(r)
        if device == "cuda":
            torch.cuda.empty_cache()
        print(f"  {n}: {r['tokens_per_s']:.0f} tokens/s", file=sys.stderr)
    headers = ["variant", "attention", "row", "loss", "params", "tokens/s", "MFU", "peak GiB"]
    table = [[r["variant"], r["attention"], r["row_tokens"], r["loss"], f"{r['params'] / 1e6:.1f}M",
              f"{r['tokens_per_s']:.0f}", f"{100 * r['mfu']:.2f}%", f"{r['peak_gib']:.2f}"] for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *table, strict=False)]
    for line in [headers, ["-" * w for w in widths], *table]:
        print("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
