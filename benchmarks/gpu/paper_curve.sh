#!/usr/bin/env bash
# Issue 27, the paper curve: the `paper` preset on dmc_pendulum_swingup for 100k env frames, the
# seeds given as arguments in parallel processes on the one GPU, for the official DreamerV1's 365
# at 100k (5 seeds; benchmarks/learn.py prints it beside ours). A run folder (~600 MB of frames)
# cannot come back from the device machine, so a run must end inside one command (10 minutes):
# run benchmarks/gpu/check.sh first, and choose the seeds its updates/s leave room for.
#   here, once:  ../shared/tools/gpu-wheels .whl-dmc dmc tyro docstring-parser typeguard
#                and the GL loaders into .gl (the device README's recipe)
#   there:       device `run`, carry [".whl-dmc", ".gl"], timeout_s 590, command: bash benchmarks/gpu/paper_curve.sh 0
#   on a CPU first: TINY=1 PYTHON=.venv/bin/python OUT=/tmp/gpu-out bash benchmarks/gpu/paper_curve.sh 0
# Back in $OUT: learn.txt (the benchmark's table and wall clock) and each seed's eval and metrics CSVs.
set -u
source benchmarks/gpu/setup.sh .whl-dmc
export MUJOCO_GL=egl
if [ -z "${TINY:-}" ]; then
  for deb in .gl/*.deb; do dpkg -x "$deb" /; done
  ldconfig
  sizes="--preset paper --total-frames 100000"
else
  sizes="--preset ci --total-frames 800"
fi
root=$(mktemp -d)
timeout 560 $py benchmarks/learn.py --env dmc_pendulum_swingup $sizes --seeds "$@" --parallel $# --root "$root" \
  > "$out/learn.txt" 2>&1
echo "learn.py exit status $? (124: stopped at the time limit; the CSVs hold the evaluations so far)" >> "$out/learn.txt"
cat "$out/learn.txt"
for seed in "$@"; do
  for file in eval metrics; do
    cp "$root"/*/seed"$seed"/$file.csv "$out/seed${seed}_$file.csv" 2>/dev/null
  done
done
ls "$out"
