"""Cost to learn: the updates a configuration needed until the mean eval return over its seeds
first reached a threshold (-250 on pixel Pendulum), times what one update costs; several
configurations and code versions timed in the same run, alternating, so that they share the
machine's state.

    python benchmarks/cost_to_learn.py --threshold -250 \\
        --case "before=2a407e5:benchmarks/results/pendulum_cpu-d16t32-fp32_2026-11-29:--cnn-depth 16 --seq-len 32" \\
        --case "now=HEAD:benchmarks/results/pendulum_cpu-d8t24-fp32_2026-11-29"

A case is LABEL=REF:CURVES[:CONFIG FLAGS]. REF is a git commit (its dreamer_lib is timed, taken
with `git archive`) or `.` for the working tree; CURVES the prefix of per-seed eval CSVs that
benchmarks/learn.py wrote (PREFIX_seed*_eval.csv); CONFIG FLAGS change the preset as
dreamer-train's flags do. The update is timed as in throughput.py, each case in its own process,
on the same random batch for every case (this checkout's dreamer_lib.buffer.random_batch). The
first case is the baseline of the ratio column.
"""
from __future__ import annotations

import argparse
import csv
import os
import pathlib
import shlex
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO

REPO = pathlib.Path(__file__).resolve().parent.parent


def time_update(preset: str, flags: list[str], threads: int, warmup: int, repeats: int) -> float:
    """ms per update of whichever dreamer_lib is first on the path (run in a child process), on
    this checkout's random_batch: the same batch for every case, also for commits that lack it."""
    import importlib.util

    import torch
    import tyro
    from dreamer_lib.buffer import KEYS  # the timed code's names (before f90063f, "discount" for not_terminal)
    from dreamer_lib.config import Config, make_config
    from throughput import measure

    torch.set_num_threads(threads)
    config = tyro.cli(Config, default=make_config(preset, device="cpu", precision="fp32"), args=flags)
    spec = importlib.util.spec_from_file_location("this_checkouts_buffer", REPO / "dreamer_lib" / "buffer.py")
    buffer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(buffer)
    batch = buffer.random_batch(config.batch_size, config.seq_len, action_size=1)  # Pendulum's one action
    batch = dict(zip(KEYS, batch.values()))  # image, action, reward, then the 0/1 flag, in every version
    return measure(config, torch.device("cpu"), warmup, repeats, action_size=1, batch=batch)["ms"]


def updates_to_threshold(prefix: str, threshold: float) -> tuple[int | None, int, int]:
    """(updates at the first eval where the seeds' mean return is at least threshold, its env frames, seeds)."""
    files = sorted(pathlib.Path(prefix).parent.glob(pathlib.Path(prefix).name + "_seed*_eval.csv"))
    if not files:
        sys.exit(f"No eval CSVs match {prefix}_seed*_eval.csv: give the prefix that learn.py's per-seed files share.")
    rows = [{int(r["env_frames"]): r for r in csv.DictReader(f.open())} for f in files]
    for frames in sorted(set.intersection(*(set(r) for r in rows))):
        mean = sum(float(r[frames]["return_mean"]) for r in rows) / len(rows)
        if mean >= threshold:  # Pendulum's returns are negative: -250 or better
            return int(rows[0][frames]["updates"]), frames, len(files)
    return None, 0, len(files)


def code_of(ref: str, into: pathlib.Path) -> pathlib.Path:
    if ref == ".":
        return REPO
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, "dreamer_lib"], check=True,
                             capture_output=True).stdout
    tarfile.open(fileobj=BytesIO(archive)).extractall(into, filter="data")
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--case", action="append", default=[], help="LABEL=REF:CURVES[:CONFIG FLAGS]")
    parser.add_argument("--threshold", type=float, default=-250.0, help="mean eval return to reach")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds over the cases")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=12)
    parser.add_argument("--time-one", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)  # the child
    args = parser.parse_args()
    if args.time_one is not None:
        print(time_update(args.preset, args.time_one, args.threads, args.warmup, args.repeats))
        return
    if not args.case:
        parser.error("give at least one --case LABEL=REF:CURVES[:CONFIG FLAGS]")

    cases = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, spec in enumerate(args.case):
            label, _, rest = spec.partition("=")
            ref, curves, *flags = rest.split(":", 2)
            cases.append(dict(label=label, ref=ref, curves=curves, flags=shlex.split(flags[0]) if flags else [],
                              code=code_of(ref, pathlib.Path(tmp) / str(i)), ms=[]))
        print(f"cost_to_learn.py {time.strftime('%Y-%m-%d %H:%M')} | preset {args.preset}, fp32, {args.threads} "
              f"threads, {os.cpu_count()} cores | {args.rounds} rounds x {args.repeats} timed updates per case")
        for _ in range(args.rounds):
            for case in cases:
                env = dict(os.environ, PYTHONPATH=str(case["code"]))
                command = [sys.executable, __file__, "--preset", args.preset, "--threads", str(args.threads),
                           "--warmup", str(args.warmup), "--repeats", str(args.repeats), "--time-one", *case["flags"]]
                child = subprocess.run(command, env=env, capture_output=True, text=True)
                if child.returncode:
                    sys.exit(f"Timing case {case['label']!r} failed:\n{child.stderr}")
                case["ms"].append(float(child.stdout.split()[-1]))

    print(f"{'case':<32} {'ms/update (rounds)':<30} {'median':>6} {'updates to ' + str(args.threshold):>18} "
          f"{'product':>9} {'ratio':>6}")
    base = None
    for case in cases:
        ms = statistics.median(case["ms"])  # robust to a round disturbed by another process
        updates, frames, seeds = updates_to_threshold(case["curves"], args.threshold)
        name, rounds = f"{case['label']} ({seeds} seeds)", ", ".join(f"{m:.0f}" for m in case["ms"])
        if updates is None:
            print(f"{name:<32} {rounds:<30} {ms:6.0f} {'never':>18}")
            continue
        product = updates * ms / 1000
        base = base or product
        print(f"{name:<32} {rounds:<30} {ms:6.0f} {f'{updates} ({frames // 1000}k frames)':>18} "
              f"{product:8.0f}s {product / base:6.3f}")

if __name__ == "__main__":
    main()
