"""The training loop and the `dreamer-train` command (algorithm 1 of the paper).

    dreamer-train                          # pixel Pendulum, the preset that fits this machine
    dreamer-train --env dmc_walker_walk --preset paper --steps 1000000
    dreamer-train --resume runs/pendulum-cpu-seed0   # continue a stopped run
    dreamer-train --test                   # one-minute end-to-end check

Three counters, never mixed: env frames (simulator steps = agent steps x action repeat; the
paper's x-axis and the one `--steps` counts), agent steps (decisions), and updates.

A run folder holds: config.json, episodes/ (every training episode, written as it finishes),
checkpoint.pt (latest good state), metrics.csv (one row per training phase), eval.csv (one row
per evaluation: mean and std over episodes of the policy's mode), eval.gif, openl.gif and
openl.png (open-loop prediction), learning_curve.png. After a crash or kill, `--resume` reloads
the episodes and the checkpoint; updates owed by episodes collected after the checkpoint are
caught up, so no collected data and no counter is lost.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import math
import os
import pathlib
import signal
import sys
import tempfile
import time

import numpy as np
import torch
from tqdm import tqdm  # the text bar: it also reads in a saved notebook

from dreamer_lib import viz
from dreamer_lib.agent import DreamerV1
from dreamer_lib.buffer import ReplayBuffer
from dreamer_lib.config import ARCHITECTURE, Config, default_preset, make_config
from dreamer_lib.envs import make_env, run_episode


class TrainingStopped(Exception):
    """Raised when a loss becomes NaN or inf; the run folder keeps the last good checkpoint."""


def updates_due(env_frames: int, config: Config) -> int:
    """Updates the schedule asks for by this many env frames: train_steps once the prefill is
    done (the official code's pretraining), then train_steps more every train_every frames."""
    if env_frames < config.prefill_frames:
        return 0
    return config.train_steps * (1 + (env_frames - config.prefill_frames) // config.train_every)


def evaluate(agent: DreamerV1, env, episodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Returns of `episodes` episodes with the actor's mode and no exploration noise, and the
    frames of the first one."""
    policy = lambda image, state: agent.policy(image, state, explore=False)  # noqa: E731
    returns, frames = [], None
    for _ in range(episodes):
        episode = run_episode(env, policy, agent.initial_policy_state())
        returns.append(float(episode["reward"].sum()))
        frames = episode["image"] if frames is None else frames
    return np.array(returns), frames


def load_checkpoint(path: pathlib.Path, map_location="cpu") -> dict:
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as error:
        raise ValueError(f"Could not read the checkpoint {path} ({type(error).__name__}: {error}). The file is "
                         "damaged or not a dreamer_lib checkpoint; the episodes in its run folder are intact, so "
                         "you can move the checkpoint away and resume to retrain from them.") from None


def load_run_config(run: pathlib.Path) -> Config:
    path = pathlib.Path(run) / "config.json"
    if not path.exists():
        raise ValueError(f"{run} is not a dreamer-train run folder (it has no config.json). "
                         "Point at a folder that dreamer-train wrote, e.g. runs/pendulum-cpu-seed0.")
    return Config.from_json(path.read_text())


class CSVLog:
    """Appends rows to a CSV file, writing the header once; survives resumes."""

    def __init__(self, path: pathlib.Path):
        self.path = path

    def write(self, row: dict) -> None:
        new = not self.path.exists()
        with self.path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        with self.path.open() as f:
            return list(csv.DictReader(f))


class Trainer:
    def __init__(self, config: Config, logdir: str | pathlib.Path, progress: bool = True):
        self.config, self.logdir = config, pathlib.Path(logdir)
        self.logdir.mkdir(parents=True, exist_ok=True)
        config_path = self.logdir / "config.json"
        if config_path.exists():
            saved = Config.from_json(config_path.read_text())
            changed = [k for k in ARCHITECTURE + ("env", "action_repeat") if getattr(saved, k) != getattr(config, k)]
            if changed:
                raise ValueError(f"{self.logdir} holds a run with other settings for {changed}; its checkpoint and "
                                 "episodes do not fit this config. Resume it with its own config "
                                 "(dreamer-train --resume RUN) or choose a new --logdir.")
        config_path.write_text(config.to_json())

        torch.manual_seed(config.seed)
        self.env = make_env(config.env, config.action_repeat, config.time_limit, config.image_size, seed=config.seed)
        self.eval_env = make_env(config.env, config.action_repeat, config.time_limit, config.image_size,
                                 seed=config.seed + 10_000)
        self.buffer = ReplayBuffer(self.logdir / "episodes", config.replay_capacity, seed=config.seed)
        self.agent = DreamerV1(config, self.env.action_space.shape[0])
        self.metrics_log, self.eval_log = CSVLog(self.logdir / "metrics.csv"), CSVLog(self.logdir / "eval.csv")
        self.progress = progress
        self.stop_requested = False
        self.updates, self.wall_s, self.next_eval, self.last_return = 0, 0.0, 0, float("nan")
        self._resume()

    # ----------------------------------------------------------------- state
    @property
    def agent_steps(self) -> int:
        return self.buffer.total_steps

    @property
    def env_frames(self) -> int:
        return self.buffer.total_steps * self.config.action_repeat

    def _resume(self) -> None:
        episodes = self.buffer.load()
        checkpoint_path = self.logdir / "checkpoint.pt"
        if checkpoint_path.exists():
            checkpoint = load_checkpoint(checkpoint_path, self.agent.device)
            self.agent.load_checkpoint(checkpoint["agent"])
            self.updates, self.wall_s = checkpoint["updates"], checkpoint["wall_s"]
            self.next_eval = checkpoint["next_eval"]
        if episodes:
            # New randomness for the new episodes: a resumed run must not replay its first ones.
            seed = self.config.seed + 1000 * self.buffer.total_episodes
            torch.manual_seed(seed)
            self.env.reset(seed=seed)
            self.env.action_space.seed(seed)
            print(f"Resuming {self.logdir}: {episodes} episodes ({self.env_frames} env frames), "
                  f"{self.updates} updates from the checkpoint.")

    def save_checkpoint(self) -> None:
        """Written to a temporary file and renamed, so a kill mid-write keeps the previous one."""
        state = {"agent": self.agent.checkpoint(), "updates": self.updates, "wall_s": self.wall_s,
                 "next_eval": self.next_eval, "env_frames": self.env_frames}
        temporary = self.logdir / "checkpoint.pt.tmp"
        torch.save(state, temporary)
        os.replace(temporary, self.logdir / "checkpoint.pt")

    # ----------------------------------------------------------------- phases
    def collect(self) -> None:
        if self.env_frames < self.config.prefill_frames:
            episode = run_episode(self.env)  # random actions
        else:
            policy = lambda image, state: self.agent.policy(image, state, explore=True)  # noqa: E731
            episode = run_episode(self.env, policy, self.agent.initial_policy_state())
        self.buffer.add_episode(episode)
        self.last_return = float(episode["reward"].sum())

    def train_phase(self) -> dict | None:
        """Do the updates the schedule owes; one host sync at the end to log and check them."""
        owed = updates_due(self.env_frames, self.config) - self.updates
        if owed <= 0:
            return None
        history = []
        for _ in range(owed):
            if self.stop_requested:
                break
            batch = self.buffer.sample(self.config.batch_size, self.config.seq_len)
            history.append(self.agent.update(batch))
            self.updates += 1
        if not history:  # stopped (Ctrl-C / SIGTERM) before the first update
            return None
        means = {k: torch.stack([h[k] for h in history]).float().mean().item() for k in history[0]}
        bad = [k for k, v in means.items() if not math.isfinite(v)]
        if bad:
            raise TrainingStopped(
                f"{', '.join(bad)} became NaN or inf between updates {self.updates - len(history)} and "
                f"{self.updates}. Training stopped; {self.logdir / 'checkpoint.pt'} keeps the last good state. "
                "Usual causes: a learning rate too high for this reward scale (try --reward-scale 0.1), "
                "exploding gradients (lower grad_clip), or broken observations. See lesson 7.")
        return means

    def evaluate_and_draw(self) -> dict:
        returns, frames = evaluate(self.agent, self.eval_env, self.config.eval_episodes)
        row = {"env_frames": self.env_frames, "agent_steps": self.agent_steps, "updates": self.updates,
               "wall_s": round(self.wall_s, 1), "return_mean": round(float(returns.mean()), 2),
               "return_std": round(float(returns.std()), 2), "returns": " ".join(f"{r:.1f}" for r in returns)}
        self.eval_log.write(row)
        viz.save_gif(frames, self.logdir / "eval.gif", fps=20, scale=2)
        self.draw_open_loop()
        figure = viz.learning_curve(self.eval_log.read())
        figure.savefig(self.logdir / "learning_curve.png", dpi=100)
        viz.plt.close(figure)
        return row

    def draw_open_loop(self, sequences: int = 6, length: int = 50, context: int = 5) -> None:
        longest = max(len(e["image"]) for e in self.buffer.episodes)
        length = min(length, longest)
        batch = self.buffer.sample(sequences, length)
        images, actions = (torch.as_tensor(batch[k], device=self.agent.device) for k in ("image", "action"))
        model = self.agent.open_loop(images, actions, context)
        viz.save_gif(viz.openl_frames(batch["image"], model), self.logdir / "openl.gif", fps=20)
        figure = viz.openl_strip(batch["image"], model, context)
        figure.savefig(self.logdir / "openl.png", dpi=100)
        viz.plt.close(figure)

    # ----------------------------------------------------------------- loop
    def run(self) -> list[dict]:
        c = self.config
        bar = tqdm(total=c.steps, initial=min(self.env_frames, c.steps), unit="frame", disable=not self.progress,
                   dynamic_ncols=True, desc=f"{c.env} [{c.preset}]")
        postfix: dict = {}
        start = time.time() - self.wall_s
        try:
            while self.env_frames < c.steps and not self.stop_requested:
                if self.env_frames >= max(self.next_eval, c.prefill_frames):
                    row = self.evaluate_and_draw()
                    self.next_eval = (self.env_frames // c.eval_every + 1) * c.eval_every
                    postfix["eval"] = f"{row['return_mean']:.0f}±{row['return_std']:.0f}"
                frames_before, collect_start = self.env_frames, time.time()
                self.collect()
                fps = (self.env_frames - frames_before) / max(time.time() - collect_start, 1e-9)
                means = self.train_phase()
                self.wall_s = time.time() - start
                if means is not None:
                    self.metrics_log.write({"env_frames": self.env_frames, "agent_steps": self.agent_steps,
                                            "updates": self.updates, "wall_s": round(self.wall_s, 1),
                                            "train_return": round(self.last_return, 2),
                                            "collect_fps": round(fps, 1), **{k: round(v, 4) for k, v in means.items()}})
                    self.save_checkpoint()
                    postfix.update(model=f"{means['model_loss']:.0f}", actor=f"{means['actor_loss']:.2f}")
                postfix.update(ret=f"{self.last_return:.0f}", upd=self.updates, env_fps=f"{fps:.0f}")
                bar.set_postfix(postfix, refresh=False)
                bar.update(min(self.env_frames, c.steps) - bar.n)
            evaluated = self.eval_log.read()
            if not self.stop_requested and (not evaluated or int(evaluated[-1]["env_frames"]) != self.env_frames):
                self.evaluate_and_draw()  # the final state, unless it was just evaluated
        finally:
            self.wall_s = time.time() - start
            if self.buffer.episodes and not isinstance(sys.exc_info()[1], TrainingStopped):
                self.save_checkpoint()
            bar.close()
        return self.eval_log.read()


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="dreamer-train", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--env", default=None, help="pendulum, dmc_<domain>_<task>, or a gymnasium id (default: pendulum)")
    parser.add_argument("--preset", default=None, help="paper, cpu or ci (default: paper on a GPU, cpu otherwise)")
    parser.add_argument("--steps", type=int, default=None, help="env frames to train for")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--seq-len", type=int, default=None)
    parser.add_argument("--reward-scale", type=float, default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--device", default=None, help="auto, cpu, cuda")
    parser.add_argument("--precision", default=None, help="auto, fp32, bf16")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="change any Config setting, e.g. --set free_nats=0 (repeatable)")
    parser.add_argument("--plain", action="store_true", help="use the plain eager fp32 update instead of the fast path")
    parser.add_argument("--logdir", default=None, help="run folder (default: runs/<env>-<preset>-seed<seed>)")
    parser.add_argument("--resume", default=None, metavar="RUN", help="continue the run in this folder")
    parser.add_argument("--test", action="store_true", help="one-minute end-to-end check with the ci preset")
    parser.add_argument("--no-progress", action="store_true")
    return parser.parse_args(argv)


def parse_settings(settings: list[str]) -> dict:
    """["free_nats=0", "env=dmc_walker_walk"] -> {"free_nats": 0.0, ...}, typed like Config's fields."""
    fields = {f.name: f for f in dataclasses.fields(Config)}
    values = {}
    for setting in settings:
        key, sep, text = setting.partition("=")
        if not sep or key not in fields:
            raise ValueError(f"--set {setting!r}: expected KEY=VALUE with KEY one of: {', '.join(fields)}.")
        default = fields[key].default
        try:
            values[key] = _parse_like(text, default)
        except (ValueError, KeyError):
            raise ValueError(f"--set {setting!r}: {key} takes a value of type {type(default).__name__}, got {text!r}.") from None
    return values


def _parse_like(text: str, default):
    """`text` as a value of the type of `default` (bool before int: a bool is an int in Python)."""
    if isinstance(default, bool):
        return {"true": True, "1": True, "false": False, "0": False}[text.lower()]
    if isinstance(default, int):
        return int(float(text))  # also accepts 1e5
    if isinstance(default, float):
        return float(text)
    if default is None:  # optional ints, e.g. time_limit
        return None if text.lower() == "none" else int(text)
    return text


def config_from_args(args: argparse.Namespace) -> tuple[Config, pathlib.Path]:
    overrides = dict(env=args.env, steps=args.steps, batch_size=args.batch_size, seq_len=args.seq_len,
                     reward_scale=args.reward_scale, seed=args.seed, device=args.device, precision=args.precision)
    if args.plain:
        overrides["fast"] = False
    overrides.update(parse_settings(args.set))
    if args.resume:
        run = pathlib.Path(args.resume)
        config = load_run_config(run)
        return config.replace(**{k: v for k, v in overrides.items() if v is not None}), run
    if args.test:
        config = make_config("ci", **overrides)
        return config, pathlib.Path(args.logdir or tempfile.mkdtemp(prefix="dreamer-test-"))
    config = make_config(args.preset or default_preset(), **{"env": "pendulum", **{k: v for k, v in overrides.items() if v is not None}})
    logdir = pathlib.Path(args.logdir or f"runs/{config.env}-{config.preset}-seed{config.seed}")
    if (logdir / "checkpoint.pt").exists():
        raise SystemExit(f"error: {logdir} already holds a run. Continue it with --resume {logdir}, "
                         "or choose another --logdir.")
    return config, logdir


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        config, logdir = config_from_args(args)
        trainer = Trainer(config, logdir, progress=not args.no_progress)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    def request_stop(signum, frame):
        print(f"\nSignal {signal.Signals(signum).name}: saving a checkpoint, then stopping "
              f"(resume with: dreamer-train --resume {logdir}).", file=sys.stderr)
        trainer.stop_requested = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    print(f"Run folder: {logdir}  (device {trainer.agent.device}, precision {trainer.agent.precision}, "
          f"{'fast' if config.fast else 'plain'} update, preset {config.preset})")
    try:
        rows = trainer.run()
    except TrainingStopped as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if trainer.stop_requested:
        return 0
    last = rows[-1] if rows else None
    if last:
        print(f"Done: {last['env_frames']} env frames, {last['updates']} updates, {float(last['wall_s']) / 60:.1f} min; "
              f"eval return {last['return_mean']} ± {last['return_std']} over {config.eval_episodes} episodes.")
    if args.test:
        print(f"OK: end-to-end check passed; run folder {logdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
