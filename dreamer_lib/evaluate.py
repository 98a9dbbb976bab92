"""Evaluation: the policy's mode, no exploration noise; and `dreamer-eval RUN`, which plays a
run's checkpoint, prints each episode's return and renders the first to RUN/eval-<frames>.gif."""
from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np
import torch

from dreamer_lib import viz
from dreamer_lib.agent import DreamerV1
from dreamer_lib.config import Config
from dreamer_lib.envs import make_env, run_episode


def evaluate(agent: DreamerV1, env, episodes: int, seed: int | None = None, should_stop=None):
    """Returns of `episodes` episodes with the actor's mode and no exploration noise, each from a
    fresh policy state, and the frames of the first one; `seed` reseeds the env's start states.
    None if should_stop() said yes before the end."""
    policy = lambda image, state: agent.policy(image, state, explore=False)  # noqa: E731
    returns, frames = [], None
    for i in range(episodes):
        episode = run_episode(env, policy, agent.initial_policy_state(), seed=seed if i == 0 else None,
                              should_stop=should_stop)
        if episode is None:
            return None
        returns.append(float(episode["reward"].sum()))
        frames = episode["image"] if frames is None else frames
    return np.array(returns), frames


def load_checkpoint(path: pathlib.Path, map_location="cpu") -> dict:
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as error:
        raise ValueError(f"Could not read the checkpoint {path} ({type(error).__name__}: {error}). The file is "
                         "damaged or not a dreamer_lib checkpoint; the episodes in its run folder are intact, so "
                         "you can move the checkpoint away and train a new run from another folder.") from None


def load_run_config(run: str | pathlib.Path) -> Config:
    path = pathlib.Path(run) / "config.json"
    if not path.exists():
        raise ValueError(f"{run} is not a dreamer-train run folder (it has no config.json). "
                         "Point at a folder that dreamer-train wrote, e.g. runs/pendulum-cpu-seed0.")
    return Config.from_json(path.read_text())


def load_agent(run: str | pathlib.Path, device: str | None = None):
    """The agent of a dreamer-train run folder, built with the run's own config.json."""
    run = pathlib.Path(run)
    config = load_run_config(run)
    if device:
        config = config.replace(device=device)
    if not (run / "checkpoint.pt").exists():
        raise ValueError(f"{run} has no checkpoint.pt yet: it is written before the first episode. "
                         "Train (or resume the run) first.")
    env = make_env(config.env, config.action_repeat, config.time_limit, seed=config.seed + 20_000)
    agent = DreamerV1(config, env.action_space.shape[0])
    checkpoint = load_checkpoint(run / "checkpoint.pt", agent.device)
    if not isinstance(checkpoint, dict) or "agent" not in checkpoint:
        raise ValueError(f"{run / 'checkpoint.pt'} holds no agent: it was not written by dreamer-train.")
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
        if args.episodes < 1:
            raise ValueError(f"--episodes {args.episodes}: evaluate at least 1 episode.")
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
