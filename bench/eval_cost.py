"""What `graft eval` costs on the example taxonomy: wall time of the command, and the model calls and tokens
read back from its call caches.

It first builds a generate folder of `examples/taxonomy` with the fake teacher (seconds), then times
`graft eval` as a user runs it, in a subprocess:
- `fake`: fake models and judge, the cost of graftlm itself (prompts, parsing, statistics, files);
- `embedded judge`: the embedded SmolLM2-135M as trained model, base model and judge, with the example
  exam (`examples/exams/vescary.jsonl`, open-book passages from `examples/documents`), the recipe's eval defaults
  unless `--max-items` / `--mt-bench` / `--tokens` say otherwise;
- `judge-free`: the same without a judge (`--no-judge`), as the CPU demo evaluates.
Pass `--trained` a checkpoint (e.g. `runs/demo/train/<phase>/checkpoints/step-N`) to time a real before/after:
with `default` on both sides the base model's closed-book answers come from the trained model's cache.

    .venv/bin/python bench/eval_cost.py [--trained default] [--max-items N] [--mt-bench N] [--tokens N]
                                        [--only fake|judge|judge-free]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def cache_stats(out: Path) -> tuple[int, int, int]:
    calls = cached = tokens = 0
    for db_path in (out / "cache").glob("*.sqlite"):
        with sqlite3.connect(db_path) as db:
            n, c, t = db.execute("SELECT count(*), coalesce(sum(cached), 0), coalesce(sum(completion_tokens), 0) "
                                 "FROM calls").fetchone()
        calls, cached, tokens = calls + n, cached + c, tokens + t
    return calls, cached, tokens


def graft(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "graftlm", *args], env=env, text=True, capture_output=True,
                          check=False, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"graft {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done


def run(name: str, model: str, base: str, judge: str | None, gen: Path, root: Path, extra: list[str],
        env: dict[str, str]) -> list[str]:
    out = root / f"eval-{name}"
    args = ["eval", model, "--base", base, "--data", str(gen), "--out", str(out),
            "--questions", str(ROOT / "examples" / "exams" / "vescary.jsonl"), "--documents", str(ROOT / "examples" / "documents"),
            *(["--judge", judge] if judge else ["--no-judge"]), *extra]
    start = time.perf_counter()
    graft(*args, env=env)
    wall = time.perf_counter() - start
    calls, cached, toks = cache_stats(out)
    return [name, model, judge or "none", f"{wall:.1f}", str(calls), str(cached), str(toks),
            f"{toks / wall:.1f}" if wall else "-"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trained", default="default", help="the trained model (default: the embedded model)")
    p.add_argument("--max-items", type=int, help="eval.max_items_per_leaf (default: the recipe's, all items)")
    p.add_argument("--mt-bench", type=int, help="eval.mt_bench_questions (default: the recipe's)")
    p.add_argument("--tokens", type=int, help="eval.max_new_tokens (default: the recipe's)")
    p.add_argument("--only", choices=("fake", "judge", "judge-free"), action="append",
                   help="run only these rows (repeatable)")
    args = p.parse_args()
    rows_wanted = args.only or ["fake", "judge", "judge-free"]
    extra: list[str] = []
    if args.max_items is not None:
        extra += ["--max-items", str(args.max_items)]
    if args.mt_bench is not None:
        extra += ["--mt-bench", str(args.mt_bench)]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env = {**os.environ, "GRAFTLM_HOME": str(root / "home"), "HF_HUB_OFFLINE": "1",
               "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
        if args.tokens is not None:
            recipe = root / "recipe.yaml"
            recipe.write_text(f"eval:\n  max_new_tokens: {args.tokens}\n", encoding="utf-8")
            extra += ["--recipe", str(recipe)]
        gen = root / "generate"
        # `graft generate` reads the example leaf's documents repository; `graft run` builds it when missing
        from graftlm.taxonomy.docrepo import prepare_local_documents

        prepare_local_documents(ROOT / "examples" / "taxonomy")
        graft("generate", str(ROOT / "examples" / "taxonomy"), "--teacher", "fake", "--out", str(gen), env=env)
        rows = []
        if "fake" in rows_wanted:
            rows.append(run("fake", "fake", "fake", "fake", gen, root, extra, env))
        if "judge" in rows_wanted:
            rows.append(run("embedded judge", args.trained, "default", "default", gen, root, extra, env))
        if "judge-free" in rows_wanted:
            rows.append(run("judge-free", args.trained, "default", None, gen, root, extra, env))
    from graftlm.cli.common import format_table

    print(f"graft eval on examples/taxonomy (fake-teacher generate folder) + examples/exams/vescary.jsonl, "
          f"{os.cpu_count()} CPUs")
    print(format_table(["row", "trained model", "judge", "wall s", "calls", "cached", "completion tokens",
                        "tokens/s"], rows))


if __name__ == "__main__":
    main()
