"""What an evaluation costs: `run_eval` on a small realistic generate folder, timed, with the teacher calls
and tokens read back from its call caches.

The first row uses the fake model and judge (the cost of graftlm itself: prompts, parsing, bootstrap,
permutation tests, files); the second the embedded SmolLM2-135M as trained model, base model and judge
(the CPU demo's set-up). Prints a table.

`--example` instead times `graft eval default --base default --judge default` with the default `eval`
settings on the example taxonomy's knowledge leaf (data from `graft generate` with the fake teacher and the
CPU demo's generate section): the one-leaf evaluation that must finish within 5 minutes on a CPU.

    .venv/bin/python bench/eval_cost.py [--model default] [--items 4] [--mt-bench 2] [--tokens 64] [--skip-real]
    .venv/bin/python bench/eval_cost.py --example
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "evaluate"))


def cache_stats(out: Path) -> tuple[int, int, int]:
    calls = cached = tokens = 0
    for db_path in (out / "cache").glob("*.sqlite"):
        with sqlite3.connect(db_path) as db:
            n, c, t = db.execute("SELECT count(*), coalesce(sum(cached), 0), coalesce(sum(completion_tokens), 0) "
                                 "FROM calls").fetchone()
        calls, cached, tokens = calls + n, cached + c, tokens + t
    return calls, cached, tokens


def run(model: str, judge: str, items: int, mt_bench: int, tokens: int, root: Path) -> list[str]:
    from eval_helpers import make_generate_dir

    from graftlm.config import recipe_from_dict
    from graftlm.evaluate.run import run_eval

    gen = make_generate_dir(root / f"gen-{model}")
    recipe = recipe_from_dict({"teacher": {"model": judge, "device": "cpu"},
                               "eval": {"max_items_per_leaf": items, "mt_bench_questions": mt_bench,
                                        "max_new_tokens": tokens, "judge_max_tokens": 2 * tokens}})
    out = root / f"eval-{model}"
    start = time.perf_counter()
    run_eval(model, gen, out, recipe, base_model=model)
    wall = time.perf_counter() - start
    calls, cached, toks = cache_stats(out)
    return [model, judge, str(items), str(mt_bench), f"{wall:.1f}", str(calls), str(cached), str(toks),
            f"{toks / wall:.1f}"]


def example(root: Path) -> list[str]:
    """`graft eval` of the embedded model (trained = base = judge) on the example knowledge leaf."""
    import json
    import subprocess

    from graftlm.config import load_recipe
    from graftlm.generate.run import run_generate
    from graftlm.taxonomy.load import load_taxonomy

    repo = Path(__file__).resolve().parents[1]
    taxonomy = repo / "examples" / "taxonomy"
    demo = load_recipe(repo / "recipes" / "cpu-demo.yaml")
    leaves = [leaf for leaf in load_taxonomy(taxonomy) if leaf.is_knowledge]
    recipe = demo.model_copy(update={"teacher": demo.teacher.model_copy(update={"model": "fake"})})
    gen = run_generate(taxonomy, root / "gen", recipe, leaves=leaves, progress=False)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "graftlm", "eval", "default", "--data", str(gen), "--base", "default",
                    "--judge", "default", "--out", str(root / "eval")], check=True)
    wall = time.perf_counter() - start
    scores = json.loads((root / "eval" / "scores.json").read_text())
    mt = (scores.get("retention") or {}).get("mt_bench") or {}
    acc = scores.get("judge_accuracy") or {}
    items = sum(block["items"] for block in scores["leaves"].values())
    return [leaves[0].name, str(items), str(mt.get("questions", 0)), f"{acc.get('accuracy') or 0:.2f}",
            ",".join(acc.get("methods") or []), f"{wall:.0f}"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="default")
    p.add_argument("--items", type=int, default=4, help="held-out items per leaf (3 leaves)")
    p.add_argument("--mt-bench", type=int, default=2)
    p.add_argument("--tokens", type=int, default=64, help="eval.max_new_tokens (the judge gets twice as many)")
    p.add_argument("--skip-real", action="store_true", help="only the fake row")
    p.add_argument("--example", action="store_true", help="time graft eval on the example knowledge leaf")
    args = p.parse_args()
    if args.example:
        from graftlm.cli.common import format_table

        with tempfile.TemporaryDirectory() as tmp:
            row = example(Path(tmp))
        print(format_table(["leaf", "items", "MT-Bench", "judge accuracy", "judged by", "wall s"], [row]))
        return
    import torch

    torch.set_num_threads(2)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rows.append(run("fake", "fake", args.items, args.mt_bench, args.tokens, Path(tmp)))
        if not args.skip_real:
            rows.append(run(args.model, args.model, args.items, args.mt_bench, args.tokens, Path(tmp)))
    from graftlm.cli.common import format_table

    print(format_table(["model", "judge", "items/leaf", "MT-Bench", "wall s", "calls", "cached", "completion tokens",
                        "tokens/s"], rows))


if __name__ == "__main__":
    main()
