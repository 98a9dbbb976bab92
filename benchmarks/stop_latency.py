"""How soon `dreamer-train` stops after a signal: SIGTERM or SIGINT while it trains (ci preset),
seconds until the process has saved its checkpoint and exited, over a few tries.

    python benchmarks/stop_latency.py --tries 5

The suite checks that a signal saves a checkpoint and sets the exit status (tests/test_trainer.py);
how many seconds that takes depends on the machine and its load, so it is a figure, printed here.
"""
from __future__ import annotations

import argparse
import datetime
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def one_stop(signum: int, folder: Path) -> float:
    logdir = folder / "run"
    process = subprocess.Popen([sys.executable, "-m", "dreamer_lib.cli", "--preset", "ci", "--total-frames", "100000",
                                "--logdir", str(logdir), "--no-progress"], cwd=folder,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    while not (logdir / "metrics.csv").exists():  # training has begun
        if process.poll() is not None:
            raise SystemExit(f"the trainer exited early: {process.stderr.read()}")
        time.sleep(0.05)
    sent = time.perf_counter()
    process.send_signal(signum)
    process.wait()
    return time.perf_counter() - sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tries", type=int, default=3)
    args = parser.parse_args()
    print(f"{datetime.date.today()} | {platform.processor() or platform.machine()} | python {platform.python_version()}")
    for signum in (signal.SIGTERM, signal.SIGINT):
        seconds = []
        for _ in range(args.tries):
            with tempfile.TemporaryDirectory() as folder:
                seconds.append(one_stop(signum, Path(folder)))
        print(f"{signal.Signals(signum).name}: median {statistics.median(seconds):.2f} s, "
              f"max {max(seconds):.2f} s over {args.tries} tries (signal to exit, checkpoint saved)")


if __name__ == "__main__":
    main()
