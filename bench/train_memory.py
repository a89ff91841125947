"""Peak memory (RSS) of a full fine-tune with graftlm's trainer, on CPU by default.

Runs `train_phase` (the real loop: render, pack, AdamW, checkpoint) on synthetic samples of about
`--seq-len` tokens, one configuration per subprocess so each peak is measured alone, and prints a table.

    .venv/bin/python bench/train_memory.py                       # embedded SmolLM2-135M, seq 1024
    .venv/bin/python bench/train_memory.py --model tiny --steps 2  # seconds, for a smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _samples(tokenizer, seq_len: int, n: int):  # type: ignore[no-untyped-def]
    from graftlm.records import SYSTEM_PROMPT, Sample
    from graftlm.train.render import render

    words = ["the", "leaf", "is", "green", "and", "the", "seed", "is", "small", "so", "the", "model", "can", "learn", "a", "fact", "about", "the", "data"]
    out = []
    for i in range(n):
        k = seq_len
        while True:  # shrink the answer until the rendered sample fits
            answer = " ".join(words[(i + j) % len(words)] for j in range(k))
            s = Sample(f"s{i}", [{"role": "system", "content": SYSTEM_PROMPT},
                                 {"role": "user", "content": f"Tell me about item {i}."},
                                 {"role": "assistant", "content": answer}])
            length = len(render(s, tokenizer)[0])
            if length <= seq_len:
                break
            k -= max(1, (length - seq_len) // 2 + 1)
        out.append(s)
    return out


def child(args: argparse.Namespace) -> None:
    import torch
    from transformers import AutoTokenizer

    from graftlm.config.train import TrainConfig
    from graftlm.models import materialize, resolve
    from graftlm.train.distributed import Dist
    from graftlm.train.loop import PhaseSpec, train_phase

    torch.set_num_threads(args.threads)
    if args.model == "tiny":
        from graftlm.testing.tiny import build_tiny_model

        folder = build_tiny_model(Path(tempfile.mkdtemp()) / "tiny")
    else:
        folder = materialize(resolve(args.model))
    tok = AutoTokenizer.from_pretrained(str(folder))
    samples = _samples(tok, args.seq_len, args.batch * (args.steps + 1))
    cfg = TrainConfig(epochs=1, batch_size=args.batch, max_seq_len=args.seq_len, max_tokens_per_row=args.seq_len,
                      warmup_steps=1, gradient_checkpointing=bool(args.gc), save_epoch_end=False, num_threads=args.threads,
                      attention=args.attention)
    out = Path(tempfile.mkdtemp())
    params = sum(p.numel() for p in __import__("safetensors.torch", fromlist=["load_file"]).load_file(
        str(folder / "model.safetensors")).values())
    t0 = time.time()
    spec = PhaseSpec("bench", "knowledge", samples, folder, out / "phase", "bench")
    train_phase(spec, cfg, Dist(), stop_after_steps=args.steps)
    dt = time.time() - t0
    rows = [json.loads(line) for line in (out / "phase" / "metrics.jsonl").read_text().splitlines()]
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"params": params, "steps": len(rows), "seconds": dt,
                      "tokens_per_s": sum(r["tokens"] for r in rows) / max(1e-9, rows[-1]["time"]),
                      "peak_rss_gib": peak_kib / 2**20}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default", help="`default` (SmolLM2-135M), `tiny`, an HF folder or GGUF")
    ap.add_argument("--seq-len", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=2, help="samples per optimizer step (one row each)")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--variants", default="plain,gc", help="comma list of: plain, gc (gradient checkpointing), "
                    "each optionally with :ATTENTION (default varlen), e.g. plain:sdpa")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--gc", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--attention", default="varlen", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    rows = []
    for variant in args.variants.split(","):
        kind, _, attention = variant.partition(":")
        if kind not in ("plain", "gc"):
            sys.exit(f"unknown variant {variant!r}: use plain or gc, optionally with :ATTENTION")
        cmd = [sys.executable, __file__, "--child", "--model", args.model, "--seq-len", str(args.seq_len),
               "--batch", str(args.batch), "--steps", str(args.steps), "--threads", str(args.threads),
               "--attention", attention or "varlen"]
        if kind == "gc":
            cmd.append("--gc")
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"variant {variant} failed:\n{proc.stderr[-3000:]}")
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append((kind, attention or "varlen", args.model, f"{r['params'] / 1e6:.1f}M", args.seq_len, r["steps"],
                     f"{r['tokens_per_s']:.0f}", f"{r['peak_rss_gib']:.2f}"))
    headers = ("variant", "attention", "model", "params", "seq_len", "steps", "tokens/s", "peak RSS GiB")
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=False)]
    for line in [headers, tuple("-" * w for w in widths), *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)))


if __name__ == "__main__":
    main()
