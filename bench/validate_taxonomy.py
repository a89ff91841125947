"""Validate the community taxonomy corpus (419 qna.yaml files) in one process and print files/s.

    .venv/bin/python bench/validate_taxonomy.py [CORPUS_FILES_DIR] [--repeat N]

The first pass includes building the JSON-schema validators (once per process); later passes show
the steady state. Target: all files in under 1 s on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import yaml

from graftlm.taxonomy.validate import validate_paths

DEFAULT = Path(__file__).resolve().parents[1].parent / "shared" / "corpora" / "instructlab-taxonomy" / "files"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="?", type=Path, default=DEFAULT)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    expected_path = args.files.parent / "expected.json"
    expected = json.loads(expected_path.read_text()) if expected_path.is_file() else {}
    rows = []
    for i in range(args.repeat):
        t0 = time.perf_counter()
        reports = validate_paths([args.files])
        dt = time.perf_counter() - t0
        agree = sum(1 for r in reports
                    if expected.get(r.path.relative_to(args.files).as_posix(), {}).get("valid") == r.valid)
        rows.append((f"pass {i + 1}" + (" (cold)" if i == 0 else ""), len(reports), dt, len(reports) / dt, agree))
    print(f"libyaml C parser: {yaml.__with_libyaml__}")
    print(f"{'run':<14}{'files':>7}{'seconds':>10}{'files/s':>10}{'agree':>8}")
    for name, n, dt, rate, agree in rows:
        print(f"{name:<14}{n:>7}{dt:>10.3f}{rate:>10.0f}{agree:>5}/{len(expected) or n}")


if __name__ == "__main__":
    main()
