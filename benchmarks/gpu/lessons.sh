#!/usr/bin/env bash
# Issue 27, GPU runs 2 and 3: execute lessons at the gpu scale and time each. Lesson 6 trains the
# paper-size model for 100k env frames, so it runs alone; the others together:
#   here, once:  ../shared/tools/gpu-wheels .whl nb tyro docstring-parser typeguard
#   there:       device `run`, carry [".whl"], timeout_s 570, command: bash benchmarks/gpu/lessons.sh 00 01 02 03 04 05 07 08
#                (then, in a run of its own: bash benchmarks/gpu/lessons.sh 06)
#   on a CPU first: TINY=1 PYTHON=.venv/bin/python OUT=/tmp/gpu-out bash benchmarks/gpu/lessons.sh 00 02
# Back in $OUT: times.txt (one line per lesson), kernels.log (what the kernels said) and
# lessons.tar.gz (the executed notebooks, to read and to look at every picture before any of it
# is committed).
set -u
source benchmarks/gpu/setup.sh .whl
if [ -n "${TINY:-}" ]; then export DREAMER_SCALE=ci; else export DREAMER_SCALE=gpu; fi
executed=$(mktemp -d)
for number in "$@"; do
  for lesson in notebooks/${number}_*.ipynb; do
    $py - "$lesson" "$executed" <<'PY' 2>>"$out/kernels.log" | tee -a "$out/times.txt"
import pathlib, sys, time
import nbformat
from nbclient import NotebookClient
lesson, folder = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
notebook = nbformat.read(lesson, as_version=4)
started = time.time()
try:
    NotebookClient(notebook, timeout=1800, kernel_name="python3", resources={"metadata": {"path": "notebooks"}}).execute()
    status = "ok"
except Exception as error:  # keep the cells that ran: the error is in the saved notebook
    status = f"FAILED: {type(error).__name__}: {str(error).strip().splitlines()[-1][:300]}"
nbformat.write(notebook, folder / lesson.name)
print(f"{lesson.name}: {time.time() - started:.0f} s at scale {__import__('os').environ['DREAMER_SCALE']}, {status}")
PY
  done
done
tar -czf "$out/lessons.tar.gz" -C "$executed" .
