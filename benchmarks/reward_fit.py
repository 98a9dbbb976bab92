"""How well a trained world model's reward head fits the rewards, by their size: the measurement
behind not building DreamerV3's symlog targets (docs/provenance.md, row "symlog targets").

    python benchmarks/reward_fit.py RUN_OR_MODEL

RUN_OR_MODEL is a dreamer-train run folder or a shipped model (`pretrained:pendulum-cpu`). Filters
every stored episode with the posterior (`pictures.debug_episode`, seeded, one CPU thread) and
compares the predicted reward of each step with the real one, in env reward units per agent step.
Symlog (V3, section 3) squashes targets whose size spans orders of magnitude, so that the large
ones do not dominate a squared error: if they did, the absolute error would grow with the size.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from dreamer_lib.buffer import ReplayBuffer
from dreamer_lib.cli import run_or_model
from dreamer_lib.course import pictures
from dreamer_lib.evaluate import load_agent

BINS = (-np.inf, -20.0, -10.0, -2.0, np.inf)  # rewards per agent step (Pendulum: about -30 to 0)


def errors_by_size(real: np.ndarray, predicted: np.ndarray, bins=BINS) -> list[tuple[float, float, int, float]]:
    """(low, high, steps, mean absolute error) for the real rewards in each [low, high) with any."""
    error = np.abs(predicted - real)
    rows = []
    for low, high in zip(bins[:-1], bins[1:]):
        inside = (real >= low) & (real < high)
        if inside.any():
            rows.append((low, high, int(inside.sum()), float(error[inside].mean())))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="a run folder, or pretrained:NAME")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    folder = run_or_model(args.run)
    agent, _, _ = load_agent(folder, device="cpu")
    episodes = ReplayBuffer(folder / "episodes", capacity=10**9)
    episodes.load()
    real, predicted = [], []
    for episode in episodes.episodes:
        traces = pictures.debug_episode(agent, episode, start=0, seed=0)
        real.append(traces["reward"][1:])  # step 0 is the reset frame: no reward led to it
        predicted.append(traces["reward_posterior"][1:])
    real, predicted = np.concatenate(real), np.concatenate(predicted)
    error = np.abs(predicted - real)
    print(f"{args.run}: {len(episodes.episodes)} episodes, {len(real)} agent steps; rewards per agent step "
          f"from {real.min():.2f} to {real.max():.2f} (env units; the heads learn x {agent.config.reward_scale})")
    print(f"absolute error of the predicted reward: mean {error.mean():.3f}, median {np.median(error):.3f}, "
          f"95th percentile {np.percentile(error, 95):.3f}")
    for low, high, steps, mean in errors_by_size(real, predicted):
        print(f"  real reward in [{low:g}, {high:g}): {steps:4d} steps, mean absolute error {mean:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
