#!/usr/bin/env bash
# Issue 27, GPU run 1 (about 6 minutes on an H100): the CUDA tests, then the speed of a paper-size
# update, fast path against plain eager in the same run. Everything it prints also goes to $OUT
# (the device tool's folder) or ./gpu-out.
#
#   here, once:  ../shared/tools/gpu-wheels .whl nb tyro docstring-parser typeguard   (about 30 MiB)
#   there:       device `run`, carry [".whl"], timeout_s 540, command: bash benchmarks/gpu/check.sh
#   on a CPU first, to try the script: TINY=1 PYTHON=.venv/bin/python OUT=/tmp/gpu-out bash benchmarks/gpu/check.sh
set -u
source benchmarks/gpu/setup.sh .whl

{ date -u; nvidia-smi 2>&1 | head -12
  $py -c "import torch; print('torch', torch.__version__, '| cuda', torch.cuda.is_available(), '| bf16', torch.cuda.is_available() and torch.cuda.is_bf16_supported())"
} > "$out/machine.txt" 2>&1
cat "$out/machine.txt"

# 1. Correct on CUDA: tests/test_devices.py (fast path, compile, resume across devices); on a GPU
#    none of them may be skipped, and -rs lists any that were.
timeout 300 $py -m pytest -q -p no:cacheprovider -rs tests/test_devices.py tests/test_fast_path.py > "$out/tests.txt" 2>&1
echo "tests exit status $?" >> "$out/tests.txt"
tail -n 12 "$out/tests.txt"

# 2. Fast: issue 27 asks for >= 40 updates/s at the paper sizes and >= 6x the plain eager path.
if [ -n "${TINY:-}" ]; then sizes="--preset ci --device cpu --warmup 1 --repeats 2"; else sizes="--preset paper --device cuda"; fi
timeout 200 $py benchmarks/throughput.py $sizes > "$out/throughput.txt" 2>&1
echo "throughput exit status $?" >> "$out/throughput.txt"
cat "$out/throughput.txt"
