"""What a trained Pendulum agent does, episode by episode: does it swing the pole up, how soon,
and does it keep it there? (A return alone mixes the swing-up's cost with the holding's.)

    python benchmarks/upright.py RUN_OR_MODEL [--episodes 20] [--degrees 20]

RUN_OR_MODEL is a dreamer-train run folder or a shipped model (`pretrained:pendulum-cpu`). Plays
the actor's mode (no noise) on episodes seeded 1000, 1001, ... (not the run's eval seeds), one CPU
thread, and reads the simulator's angle after each agent step. "Up" is within --degrees of the
top. Prints, per episode, the return, the first agent step from which the pole stays up to the
end (or "never"), and the share of the episode's second half spent up.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from dreamer_lib.cli import run_or_model
from dreamer_lib.evaluate import load_agent, seeded

FIRST_SEED = 1000


def play(agent, env, seed: int, degrees: float) -> tuple[float, int | None, float]:
    """(return, first step from which the pole stays up, share of the second half up) of one episode."""
    image, _ = env.reset(seed=seed)
    state, total, up, done = agent.initial_policy_state(), 0.0, [], False
    while not done:
        action, state = agent.policy(image, state, explore=False)
        image, reward, terminated, truncated, _ = env.step(action)
        total, done = total + float(reward), terminated or truncated
        angle = env.env.unwrapped.state[0]  # gymnasium's Pendulum: 0 is the top
        up.append(np.cos(angle) > np.cos(np.radians(degrees)))
    up = np.array(up)
    stays = next((t for t in range(len(up)) if up[t:].all()), None)
    return total, stays, float(up[len(up) // 2:].mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", help="a run folder, or pretrained:NAME for a shipped model")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--degrees", type=float, default=20.0, help="'up' is within this angle of the top")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    agent, env, _ = load_agent(run_or_model(args.run), device="cpu")
    if agent.config.env != "pendulum":
        parser.error(f"{args.run} was trained on {agent.config.env}: this reads Pendulum's angle.")
    with seeded(0, agent.device), torch.no_grad():
        rows = [play(agent, env, FIRST_SEED + k, args.degrees) for k in range(args.episodes)]
    returns = np.array([row[0] for row in rows])
    held = [row[1] for row in rows if row[1] is not None]
    print(f"{args.run}: {args.episodes} episodes (seeds {FIRST_SEED}-{FIRST_SEED + args.episodes - 1}), "
          f"'up' within {args.degrees:g} degrees of the top")
    print(f"return {returns.mean():.1f} ± {returns.std():.1f} (min {returns.min():.1f}, max {returns.max():.1f})")
    print(f"up from some step to the end: {len(held)} of {args.episodes}"
          + (f"; that step (agent steps): median {np.median(held):.0f}, max {max(held)}" if held else ""))
    print(f"share of the second half up: mean {np.mean([row[2] for row in rows]):.2f}")
    print("per episode (return, first step up for good, share of the second half up):")
    for k, (total, stays, share) in enumerate(rows):
        print(f"  seed {FIRST_SEED + k}: {total:8.1f}  {'never' if stays is None else stays:>5}  {share:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
