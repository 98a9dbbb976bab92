"""Why a seed that had learned falls: the agent of each checkpoint a run kept, played on the same
seeded eval episodes, with the imagination debugger's measurements (course/pictures.debug_episode)
side by side, one row per checkpoint.

    python benchmarks/diagnose_run.py RUN [--episodes 5] [--start 30] [--frames 45000 50000]

RUN is a dreamer-train run folder; its checkpoints are RUN/snapshots/checkpoint_<env frames>.pt
(copies of checkpoint.pt taken after each evaluation, e.g. by a watcher) and RUN/checkpoint.pt.
Columns, averaged over the episodes (rewards and values in env units, per agent step):
  return        the episode's return (actor's mode, no noise: the evaluation's policy)
  sampled return, mean-action return: the same episodes played by the actor's samples (no
                exploration noise: the policy the actor is trained as in imagination) and by the
                mean of 100 of its samples. A mode far below them is a fall of the evaluation's
                policy, not of what the actor learned.
  saturated     share of steps whose action is within 0.05 of a torque limit
  std           the actor's pre-tanh std at the visited states (median)
  value         the critic's value of the first state
  reward err    |predicted - real reward| from the posterior, all steps
  upright err   the same on the steps whose reward is within 0.5 of the best (0): the pole up
  open err      |predicted - real reward| of the open-loop prior, `start + 1` to `start + 15`
  pix post/open mean squared pixel error of the posterior reconstruction / open-loop frames
  kl            KL(posterior || prior) per step, nats
  value gap, open gap, imag gap: on the episodes of the actor's samples (the policy the critic
                values and the imagination plays), how far three estimates of the 15-step return
                from a state (sum of gamma^(k-1) r_{t+k} for k = 1..15, plus gamma^15 times the
                critic's value at step t + 15) lie above the real one (the episode's rewards, the
                critic's value of the posterior state at t + 15), averaged over every 5th step t:
                the critic's value of the posterior state (value), the prior fed the episode's own
                actions (open), and the actor's own imagination, as the actor learns from it
                (imag). Positive = optimistic.
Writes RUN/diagnosis.csv and RUN/diagnosis.png (each column against env frames).
"""
from __future__ import annotations

import argparse
import csv
import pathlib
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from dreamer_lib.course.pictures import debug_episode  # noqa: E402
from dreamer_lib.envs import run_episode  # noqa: E402
from dreamer_lib.evaluate import load_agent, seeded  # noqa: E402
from dreamer_lib.run_folder import read_checkpoint  # noqa: E402

COLUMNS = ("return", "sampled return", "mean-action return", "saturated", "std", "value", "reward err", "upright err", "open err", "pix post", "pix open",
           "kl", "value gap", "open gap", "imag gap")


def checkpoints(run: pathlib.Path) -> list[tuple[int, pathlib.Path]]:
    """(env frames, path) of the run's snapshots and of its last checkpoint, by env frames."""
    found = [(int(re.search(r"(\d+)", p.stem).group(1)), p) for p in (run / "snapshots").glob("checkpoint_*.pt")]
    last = read_checkpoint(run / "checkpoint.pt", "cpu")["env_frames"]
    if last not in {frames for frames, _ in found}:
        found.append((last, run / "checkpoint.pt"))
    return sorted(found)


def return_gaps(agent, episode: dict, seed: int, every: int = 5) -> dict[str, float]:
    """The value, open and imag gaps of the docstring for one episode (env reward units)."""
    import torch

    from dreamer_lib.networks import preprocess

    config, device, horizon = agent.config, agent.device, agent.config.horizon
    gamma, scale = config.gamma, config.reward_scale
    images = torch.as_tensor(np.asarray(episode["image"]), device=device)[:, None]
    actions = torch.as_tensor(np.asarray(episode["action"], np.float32), device=device)[:, None]
    reward = torch.as_tensor(np.asarray(episode["reward"], np.float32), device=device)
    starts = torch.arange(0, len(reward) - horizon, every, device=device)
    steps = starts[None] + torch.arange(1, horizon + 1, device=device)[:, None]  # (H, S): t + k
    discounts = gamma ** torch.arange(horizon, device=device, dtype=torch.float32)[:, None]  # (H, 1)

    def estimate(rewards: torch.Tensor, last_value: torch.Tensor) -> torch.Tensor:  # (H, S), (S,) -> (S,)
        return (discounts * rewards).sum(0) + gamma ** horizon * last_value

    with torch.no_grad(), seeded(seed, device):
        posterior, _ = agent.rssm.rollout_observation(agent.encoder(preprocess(images)), actions,
                                                      agent.rssm.get_initial_state(1, device))
        value = agent.critic(posterior.features)[:, 0] / scale  # (T,)
        first = posterior.at((starts, 0))  # (S, ...)
        real = estimate(reward[steps], value[steps[-1]])
        opened = agent.rssm.rollout_prior(actions[steps, 0], first)  # (H, S, ...)
        imagined, _, _ = agent.rssm.rollout_imagination(first, agent.actor, horizon)
        gaps = {"value gap": value[starts] - real}
        for name, states in (("open gap", opened), ("imag gap", imagined)):
            gaps[name] = estimate(agent.reward(states.features) / scale, agent.critic(states.at(-1).features) / scale) - real
    return {name: float(gap.mean()) for name, gap in gaps.items()}


def acting(agent, choose):
    """A policy for run_episode that acts with choose(the actor's distribution) -> action."""
    import torch

    @torch.no_grad()
    def policy(image, state):
        latent, prev_action = state
        latent = agent.observe(latent, prev_action, image[None])
        action = choose(agent.actor(latent.features))
        return action.cpu().numpy()[0], (latent, action)
    return policy


POLICIES = {"return": lambda dist: dist.mode(), "sampled return": lambda dist: dist.rsample(),
            "mean-action return": lambda dist: dist.rsample((100,)).mean(0)}


def measure(agent, env, episodes: int, start: int, seed: int = 123) -> dict[str, float]:
    rows = []
    for i in range(episodes):
        played = {}
        for name, choose in POLICIES.items():
            with seeded(seed + i, agent.device):
                played[name] = run_episode(env, acting(agent, choose), agent.initial_policy_state(), seed=seed + i)
        episode = played["return"]  # the mode's, as the evaluation plays
        sampled = played["sampled return"]  # the policy the critic values and the imagination plays
        t = debug_episode(agent, episode, start=start, seed=seed + i)
        reward, opened = t["reward"][1:], slice(start + 1, start + 1 + agent.config.horizon)
        upright = reward > -0.5
        rows.append({
            **{name: other["reward"].sum() for name, other in played.items()},
            "saturated": (np.abs(episode["action"][1:]) > 0.95).mean(),
            "std": np.median(t["policy_std"]),
            "value": t["value"][0],
            "reward err": np.abs(t["reward_posterior"][1:] - reward).mean(),
            "upright err": np.abs(t["reward_posterior"][1:] - reward)[upright].mean() if upright.any() else np.nan,
            "open err": np.abs(t["reward_open_loop"][opened] - t["reward"][opened]).mean(),
            "pix post": t["error_posterior"].mean(),
            "pix open": t["error_open_loop"][opened].mean(),
            "kl": t["kl"][1:].mean(),
            **return_gaps(agent, sampled, seed=seed + i),
        })
    means = {}
    for key in COLUMNS:  # upright err is NaN for an episode that never got the pole up
        values = [row[key] for row in rows if not np.isnan(row[key])]
        means[key] = float(np.mean(values)) if values else float("nan")
    return means


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=pathlib.Path)
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--start", type=int, default=30, help="the step where the open loop begins")
    parser.add_argument("--frames", type=int, nargs="*", help="only the checkpoints at these env frames")
    args = parser.parse_args()
    agent, env, _ = load_agent(args.run, device="cpu")
    table = []
    print(f"{'env frames':>10} | " + " | ".join(f"{c:>11}" for c in COLUMNS))
    for frames, path in checkpoints(args.run):
        if args.frames and frames not in args.frames:
            continue
        agent.load_checkpoint(read_checkpoint(path, agent.device)["agent"])
        table.append({"env_frames": frames, **measure(agent, env, args.episodes, args.start)})
        print(f"{frames:>10} | " + " | ".join(f"{table[-1][c]:>11.4g}" for c in COLUMNS), flush=True)
    with (args.run / "diagnosis.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, ["env_frames", *COLUMNS])
        writer.writeheader()
        writer.writerows(table)
    # One panel per measurement; the three policies' returns share one, the three gaps another.
    panels = [("return: mode, samples, mean action", COLUMNS[:3]), *((c, (c,)) for c in COLUMNS[3:-3]),
              ("15-step return overrated by (0: exact)", COLUMNS[-3:])]
    fig, axes = plt.subplots(2, 6, figsize=(19, 6))
    frames = [r["env_frames"] for r in table]
    for ax, (title, columns) in zip(axes.flat, panels):
        for column in columns:
            ax.plot(frames, [r[column] for r in table], marker="o", label={"return": "mode"}.get(column, column))
        if len(columns) > 1:
            ax.legend(fontsize=8)
        if title.startswith("15-step"):
            ax.axhline(0, color="k", lw=0.8)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("env frames", fontsize=9)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    fig.suptitle(f"{args.run}: {args.episodes} seeded eval episodes per checkpoint", fontsize=10)
    fig.tight_layout()
    fig.savefig(args.run / "diagnosis.png", dpi=100)
    print(f"wrote {args.run / 'diagnosis.csv'} and {args.run / 'diagnosis.png'}")


if __name__ == "__main__":
    main()
