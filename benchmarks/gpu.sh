#!/usr/bin/env bash
# GPU throughput and MFU of BPE, AU-Net-2 and AU-Net-3 (bf16 + torch.compile), in under 5 minutes on
# one H200: bash benchmarks/gpu.sh [extra benchmarks/gpu.py options]. One JSON per arm in
# $OUT/gpu-results (the device tool's output folder) or benchmarks/gpu-results, written as it goes.
# The GPU machine has torch but maybe not `regex` (the split functions need it): a wheel carried in
# benchmarks/wheels/ is installed from there, nothing is downloaded. Fetch it here first, and pass
# carry=["benchmarks/wheels"] to the device tool:
#   .venv/bin/python -m pip download regex --only-binary=:all: --python-version 3.12 \
#       --platform manylinux_2_17_x86_64 -d benchmarks/wheels
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
$PY -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print('torch', torch.__version__, torch.cuda.get_device_name())"
if ! $PY -c "import regex" 2>/dev/null; then
    $PY -m pip install --quiet --no-index --find-links benchmarks/wheels regex
fi
OUTDIR=${OUT:+$OUT/gpu-results}
OUTDIR=${OUTDIR:-benchmarks/gpu-results}
timeout 290 $PY benchmarks/gpu.py --out "$OUTDIR" "$@"
