"""Run the CPU demo end to end and print wall time per stage and the knowledge gain.

    .venv/bin/python bench/run_demo.py [--out runs/demo] [--fresh] [--recipe recipes/cpu-demo.yaml]

With --fresh the run directory is deleted first (the embedded model's GGUF conversion stays cached in
GRAFTLM_HOME). Without it, an existing run is resumed or found up to date, and the table shows the wall
times recorded in its run.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "demo")
    ap.add_argument("--recipe", type=Path, default=ROOT / "recipes" / "cpu-demo.yaml")
    ap.add_argument("--fresh", action="store_true")
    args = ap.parse_args()
    if args.fresh and args.out.exists():
        shutil.rmtree(args.out)
    start = time.perf_counter()
    # From the repository root: the recipe's eval.questions and eval.documents are relative to it.
    code = subprocess.call([sys.executable, "-m", "graftlm", "run", str(ROOT / "examples" / "taxonomy"),
                            "--recipe", str(args.recipe.resolve()), "--out", str(args.out.resolve())], cwd=ROOT)
    total = time.perf_counter() - start
    if code != 0:
        print(f"graft run failed with exit code {code}", file=sys.stderr)
        return code
    state = json.loads((args.out / "run.json").read_text())
    print(f"{'stage':<10}{'wall s':>10}")
    for name, rec in state["stages"].items():
        print(f"{name:<10}{rec.get('wall_s', 0):>10.1f}")
    print(f"{'total':<10}{sum(r.get('wall_s', 0) for r in state['stages'].values()):>10.1f}"
          f"   (this invocation: {total:.0f} s)")
    scores = json.loads((args.out / "eval" / "scores.json").read_text())
    print()
    print(f"{'leaf':<42}{'metric':<18}{'n':>4}{'base':>8}{'trained':>9}{'diff':>8}{'p':>7}")
    for leaf, entry in scores.get("leaves", {}).items():
        for metric, ev in entry.get("evaluators", {}).items():
            diff = ev.get("diff") or {}
            print(f"{leaf[-41:]:<42}{metric:<18}{ev['trained'].get('n', 0):>4}{ev['base']['mean']:>8.3f}"
                  f"{ev['trained']['mean']:>9.3f}{diff.get('diff', 0.0):>+8.3f}{diff.get('p_value', 1.0):>7.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
