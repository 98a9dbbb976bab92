"""`dreamer-eval RUN`: play a run's checkpoint with the actor's mode (no exploration noise),
print each episode's return, and render the first episode to RUN/eval-<frames>.gif."""
from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

from dreamer_lib import viz
from dreamer_lib.agent import DreamerV1
from dreamer_lib.envs import make_env
from dreamer_lib.train import evaluate, load_checkpoint, load_run_config


def load_agent(run: str | pathlib.Path, device: str | None = None):
    """The agent of a dreamer-train run folder, built with the run's own config.json."""
    run = pathlib.Path(run)
    config = load_run_config(run)
    if device:
        config = config.replace(device=device)
    if not (run / "checkpoint.pt").exists():
        raise ValueError(f"{run} has no checkpoint.pt yet: it is written after the first training phase. "
                         "Train longer (or resume the run) first.")
    env = make_env(config.env, config.action_repeat, config.time_limit, config.image_size, seed=config.seed + 20_000)
    agent = DreamerV1(config, env.action_space.shape[0])
    checkpoint = load_checkpoint(run / "checkpoint.pt", agent.device)
    agent.load_checkpoint(checkpoint["agent"])
    agent.eval()
    return agent, env, checkpoint


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="dreamer-eval", description=__doc__.split("\n")[0])
    parser.add_argument("run", help="a run folder written by dreamer-train")
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--device", default=None)
    parser.add_argument("--output", default=None, help="GIF path (default: RUN/eval-<env frames>.gif)")
    args = parser.parse_args(argv)
    try:
        agent, env, checkpoint = load_agent(args.run, args.device)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    returns, frames = evaluate(agent, env, args.episodes)
    for i, value in enumerate(returns):
        print(f"episode {i}: return {value:.1f}")
    print(f"{agent.config.env}, checkpoint at {checkpoint['env_frames']} env frames / {checkpoint['updates']} updates: "
          f"mean {np.mean(returns):.1f} ± {np.std(returns):.1f} over {len(returns)} episodes (policy mode, no noise)")
    output = pathlib.Path(args.output or pathlib.Path(args.run) / f"eval-{checkpoint['env_frames']}.gif")
    viz.save_gif(frames, output, fps=20, scale=2)
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
