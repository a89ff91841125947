#!/usr/bin/env bash
# Every GPU check of the trainer in one command, sized for a short lease on one H100/H200 (about 8 minutes):
# the CUDA tests (tests/train/test_gpu.py), then the throughput table of bench/train_throughput.py.
#
#   bash bench/gpu_check.sh wheels        # on a machine with PyPI: fetch the Python 3.12 wheels a bare
#                                         # GPU image lacks (pydantic, liger-kernel) into .whl/
#   bash bench/gpu_check.sh [OUT_DIR]     # on the GPU machine (uses .whl/ when present); logs and
#                                         # train_throughput.json go to OUT_DIR (default $OUT or /tmp/gpu-check)
#
# It needs PyTorch (>= 2.10 for the varlen kernel), transformers and Triton on the GPU machine; graftlm runs
# from src/ without being installed.
set -uo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "wheels" ]; then
  python3 -m pip download --no-deps -q --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
    pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 \
    typing-extensions==4.16.0 liger-kernel==0.8.5
  ls -l .whl
  exit
fi

OUT_DIR="${1:-${OUT:-/tmp/gpu-check}}"
mkdir -p "$OUT_DIR"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/graft-site \
    .whl/*.whl && export PYTHONPATH=/tmp/graft-site
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"

{
  nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.max.sm,driver_version --format=csv
  python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
  python3 -c "import liger_kernel; print('liger-kernel importable')" 2>&1 | tail -1
} 2>&1 | tee "$OUT_DIR/gpu.txt"

timeout 200 python3 -m pytest -q -rs -p no:cacheprovider --junitxml "$OUT_DIR/gpu_tests.xml" tests/train/test_gpu.py \
  2>&1 | tee "$OUT_DIR/gpu_tests.log"
tests_rc=${PIPESTATUS[0]}
# Skipped tests make pytest exit 0: count the tests that really ran, and stop when none did.
ran=$(python3 - "$OUT_DIR/gpu_tests.xml" <<'PY'
import sys
import xml.etree.ElementTree as ET

try:
    root = ET.parse(sys.argv[1]).getroot()
except (OSError, ET.ParseError):
    print(0)
    raise SystemExit
suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
print(sum(int(s.get("tests", 0)) - int(s.get("skipped", 0)) for s in suites))
PY
)
echo "gpu tests that ran: $ran"
if [ "${ran:-0}" = 0 ]; then
  echo "FAILED: no GPU test ran (all skipped or none collected: no CUDA GPU, or torch without CUDA?)" >&2
  exit 1
fi

timeout 420 python3 bench/train_throughput.py --steps 4 --warmup 2 --json "$OUT_DIR/train_throughput.json" \
  2>&1 | tee "$OUT_DIR/train_throughput.log"
bench_rc=${PIPESTATUS[0]}

echo "gpu tests exit $tests_rc, throughput bench exit $bench_rc"
[ "$tests_rc" = 0 ] && [ "$bench_rc" = 0 ]
