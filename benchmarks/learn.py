"""Learning benchmark: train a task for N env frames over several seeds and print eval return
against env frames and wall clock, next to the official DreamerV1 curve where one exists.

    python benchmarks/learn.py --env pendulum --preset cpu --seeds 0 1 2 --total-frames 50000
    python benchmarks/learn.py --env dmc_pendulum_swingup --preset paper --seeds 0 --total-frames 200000

Each seed is a normal `dreamer-train` run folder under --root (resumed if it exists, so a cut
benchmark continues where it stopped); seeds run as parallel processes (--parallel), splitting
the CPU threads between them. Eval: the actor's mode, no noise, `eval_episodes` episodes (see
the preset), mean over episodes; the table then gives the mean and std of that over seeds.
"""
from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import pathlib
import platform
import subprocess
import sys

import torch

# Official DreamerV1 (danijar/dreamer, 5 seeds) mean eval return by env frames; from the scores
# published with the paper's code (see docs/results.md).
OFFICIAL = {
    "dmc_pendulum_swingup": {100_000: 365, 200_000: 774, 500_000: 789, 1_000_000: 828},
    "dmc_cartpole_swingup": {100_000: 139, 200_000: 342, 500_000: 678, 1_000_000: 855},
    "dmc_cartpole_balance": {100_000: 472, 200_000: 827, 500_000: 982, 1_000_000: 988},
    "dmc_walker_walk": {100_000: 137, 200_000: 508, 500_000: 886, 1_000_000: 956},
    "dmc_cup_catch": {100_000: 73, 200_000: 503, 500_000: 962, 1_000_000: 967},
    "dmc_cheetah_run": {100_000: 128, 200_000: 385, 500_000: 630, 1_000_000: 713},
}


def read_eval(run: pathlib.Path) -> list[dict]:
    path = run / "eval.csv"
    if not path.exists():
        return []
    with path.open() as f:
        return list(csv.DictReader(f))


def summarise(runs: dict[int, pathlib.Path], env: str) -> None:
    curves = {seed: read_eval(run) for seed, run in runs.items()}
    frames = sorted({int(r["env_frames"]) for rows in curves.values() for r in rows})
    print(f"\nEval return (policy mode, mean over eval episodes) on {env}, by env frames:")
    header = f"{'env frames':>10} | " + " | ".join(f"seed {s:>3}" for s in curves) + " |   mean ± std  | wall min"
    print(header)
    print("-" * len(header))
    for frame in frames:
        values, walls = [], []
        cells = []
        for rows in curves.values():
            match = [r for r in rows if int(r["env_frames"]) == frame]
            if match:
                values.append(float(match[0]["return_mean"]))
                walls.append(float(match[0]["wall_s"]) / 60)
                cells.append(f"{values[-1]:8.1f}")
            else:
                cells.append(f"{'':>8}")
        t = torch.tensor(values)
        std = t.std().item() if len(values) > 1 else 0.0
        print(f"{frame:>10} | " + " | ".join(cells) + f" | {t.mean():7.1f} ± {std:5.1f} | {max(walls):6.1f}")
    finals = [float(rows[-1]["return_mean"]) for rows in curves.values() if rows]
    lasts = [sum(float(r["return_mean"]) for r in rows[-3:]) / len(rows[-3:]) for rows in curves.values() if rows]
    if finals:
        t, l3 = torch.tensor(finals), torch.tensor(lasts)
        print(f"final eval: {t.mean():.1f} ± {t.std().item() if len(finals) > 1 else 0:.1f} over {len(finals)} seeds; "
              f"mean of each seed's last 3 evals: {l3.mean():.1f} ± {l3.std().item() if len(lasts) > 1 else 0:.1f}")
    if env in OFFICIAL:
        print("official DreamerV1 (5 seeds, mean): " + ", ".join(f"{v} @ {k // 1000}k" for k, v in OFFICIAL[env].items()))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", default="pendulum")
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--total-frames", type=int, default=None, help="env frames per seed (default: the preset's)")
    parser.add_argument("--parallel", type=int, default=2, help="seeds trained at the same time")
    parser.add_argument("--root", default="runs/learn", help="where the run folders go")
    parser.add_argument("--precision", default=None, help="auto, fp32 or bf16 (passed to dreamer-train)")
    parser.add_argument("--summary-only", action="store_true", help="print the table of existing runs")
    args, extra = parser.parse_known_args(argv)  # other flags go to dreamer-train for new runs (e.g. --actor-entropy 0)

    root = pathlib.Path(args.root) / f"{args.env}-{args.preset}"
    runs = {seed: root / f"seed{seed}" for seed in args.seeds}
    print(f"learn.py {datetime.date.today()} | {platform.node()} | {platform.processor() or platform.machine()} | "
          f"{os.cpu_count()} cores | cuda: {torch.cuda.get_device_name() if torch.cuda.is_available() else 'none'}")
    print("command: python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])]))
    if not args.summary_only:
        threads = max(1, (os.cpu_count() or 2) // args.parallel)
        pending = list(runs.items())
        running: list[subprocess.Popen] = []
        while pending or running:
            while pending and len(running) < args.parallel:
                seed, run = pending.pop(0)
                command = [sys.executable, "-m", "dreamer_lib.cli", "--no-progress"]
                if (run / "checkpoint.pt").exists():
                    command += ["--resume", str(run)]
                else:
                    command += ["--env", args.env, "--preset", args.preset, "--seed", str(seed), "--logdir", str(run)]
                    command += extra
                if args.precision:
                    command += ["--precision", args.precision]
                if args.total_frames:
                    command += ["--total-frames", str(args.total_frames)]
                run.mkdir(parents=True, exist_ok=True)
                log = open(run / "train.log", "a")
                env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
                running.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env))
                print(f"started seed {seed}: {' '.join(command)} (threads {threads}, log {run / 'train.log'})", flush=True)
            running[0].wait()
            finished = running.pop(0)
            if finished.returncode != 0:
                print(f"a run exited with code {finished.returncode}; see its train.log", flush=True)
    summarise(runs, args.env)
    config = json.loads((next(iter(runs.values())) / "config.json").read_text()) if runs else {}
    print(f"preset {args.preset}: batch {config.get('batch_size')} x {config.get('seq_len')}, depth "
          f"{config.get('cnn_depth')}, eval episodes {config.get('eval_episodes')}, action repeat {config.get('action_repeat')}")


if __name__ == "__main__":
    main()
