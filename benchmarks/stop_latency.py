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


def one_stop(signum: int, folder: Path) -> tuple[float, int]:
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
    status = process.wait()
    return time.perf_counter() - sent, status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tries", type=int, default=3)
    args = parser.parse_args()
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.machine()) if Path("/proc/cpuinfo").exists() else platform.machine()
    print(f"{datetime.date.today()} | {cpu} | python {platform.python_version()}")
    for signum in (signal.SIGTERM, signal.SIGINT):
        seconds, statuses = [], set()
        for _ in range(args.tries):
            with tempfile.TemporaryDirectory() as folder:
                took, status = one_stop(signum, Path(folder))
            seconds.append(took)
            statuses.add(status)
        print(f"{signal.Signals(signum).name}: median {statistics.median(seconds):.2f} s, max {max(seconds):.2f} s "
              f"over {args.tries} tries (signal to exit, checkpoint saved); exit status {sorted(statuses)}")


if __name__ == "__main__":
    main()
