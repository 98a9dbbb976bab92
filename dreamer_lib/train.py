"""The training loop and the `dreamer-train` command (algorithm 1 of the paper).

    dreamer-train                          # pixel Pendulum, the preset that fits this machine
    dreamer-train --env dmc_walker_walk --preset paper --total-frames 1000000
    dreamer-train --resume runs/pendulum-cpu-seed0 --total-frames 100000   # continue (and extend) a run
    dreamer-train --test                   # one-minute end-to-end check
    dreamer-train --help                   # every setting of config.Config, with its meaning

Three counters, never mixed: env frames (simulator steps = agent steps x action repeat; the
paper's x-axis and the one `--total-frames` counts), agent steps (decisions), and updates.

A run folder holds: config.json, episodes/ (every training episode, written as it finishes),
checkpoint.pt, metrics.csv (one row per training phase), eval.csv (one row per evaluation: mean
and std over episodes of the policy's mode), TensorBoard events (when the tensorboard package is
installed: `tensorboard --logdir runs`), eval.gif, openl.gif and openl.png (open-loop
prediction), learning_curve.png, and changes.txt (settings changed on resume).

Exact resume: a checkpoint is written before every episode the agent collects. It holds the
weights, the optimisers, the counters, every random generator (torch, replay sampling, the env)
and the CSV rows so far, so a run killed at any moment and resumed writes the same rows as one
that never stopped (on the CPU; CUDA kernels are not bitwise deterministic). Evaluation and the
open-loop picture draw from their own generators, so they never change training.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import errno
import io
import math
import os
import pathlib
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass

import numpy as np
import torch
import tyro
from tqdm import tqdm  # the text bar: it also reads in a saved notebook

from dreamer_lib import viz
from dreamer_lib.agent import DreamerV1
from dreamer_lib.buffer import ReplayBuffer
from dreamer_lib.components import load_components, use_components
from dreamer_lib.config import ARCHITECTURE, Config, default_preset, make_config, updates_due
from dreamer_lib.envs import make_env, run_episode
from dreamer_lib.evaluate import evaluate, load_checkpoint, load_run_config
from dreamer_lib.run_folder import CSVLog, RunLock, TensorBoard, prepare_run_folder

# Settings a resumed run cannot change: the weights, episodes and random streams depend on them.
FIXED_ON_RESUME = ARCHITECTURE + ("env", "action_repeat", "time_limit", "seed", "preset")
CHECKPOINT_KEYS = {"agent", "updates", "wall_s", "next_eval", "env_frames", "episodes", "phase", "rng", "rows"}


class TrainingStopped(Exception):
    """A fault that ends the run: non-finite values, a full disk. The message says what and when."""


class Trainer:
    """`components`: a file of your own exercise functions (components.py), each checked first by
    `check_components(components, path)` (the course's checks); a resumed run reuses its own copy."""

    def __init__(self, config: Config, logdir: str | pathlib.Path, progress: bool = True,
                 components: str | pathlib.Path | None = None, check_components=None):
        config.validate()
        self.config, self.logdir = config, pathlib.Path(logdir)
        self.progress, self.stop_requested = progress, False
        # Everything that can fail on bad input comes before the run folder is touched.
        self.env = make_env(config.env, config.action_repeat, config.time_limit, seed=config.seed)
        self.eval_env = make_env(config.env, config.action_repeat, config.time_limit, seed=config.seed + 10_000)
        self.components, components_file = self._load_components(components, check_components)
        created = prepare_run_folder(self.logdir)
        self.lock = RunLock(self.logdir)
        self.lock.acquire()
        try:
            self._check_saved_config()
            if components_file and components_file.resolve() != (self.logdir / "components.py").resolve():
                shutil.copyfile(components_file, self.logdir / "components.py")
            self.buffer = ReplayBuffer(self.logdir / "episodes", config.replay_capacity, seed=config.seed)
            torch.manual_seed(config.seed)
            with use_components(self.components):
                self.agent = DreamerV1(config, self.env.action_space.shape[0])
            self.metrics_log, self.eval_log = CSVLog(self.logdir / "metrics.csv"), CSVLog(self.logdir / "eval.csv")
            self.updates, self.wall_s, self.next_eval = 0, 0.0, 0
            self.last_return, self.last_fps, self.phase = float("nan"), float("nan"), []
            self.saved_frames: int | None = None  # env frames of the checkpoint on disk, if any
            self._resume()
            (self.logdir / "config.json").write_text(config.to_json())
        except BaseException:
            self.lock.release()
            if created:
                shutil.rmtree(self.logdir, ignore_errors=True)
            raise
        self.tensorboard = TensorBoard(self.logdir, purge_step=self._first_missing_frame())

    def _load_components(self, path, check) -> tuple[dict, pathlib.Path | None]:
        """The exercise functions of a components file, or of the copy a resumed run keeps."""
        saved = self.logdir / "components.py"
        path = pathlib.Path(path) if path else saved if saved.is_file() else None
        if path is None:
            return {}, None
        if check is None:
            raise ValueError("Training with your own components needs their exercise checks first: use the "
                             "dreamer-train command, or dreamer_lib.course.components.train from Python.")
        components = load_components(path)
        check(components, path)
        print(f"Training with your {', '.join(components)} from {path} (the run keeps a copy: components.py).")
        return components, path

    def _check_saved_config(self) -> None:
        """A run folder keeps its architecture, env and seed; other settings may change on resume,
        and each change is applied (learning rates reach the optimisers) and logged."""
        path = self.logdir / "config.json"
        if not path.exists():
            return
        saved = Config.from_json(path.read_text())
        changed = {f.name: (getattr(saved, f.name), getattr(self.config, f.name)) for f in dataclasses.fields(Config)
                   if getattr(saved, f.name) != getattr(self.config, f.name)}
        fixed = sorted(set(changed) & set(FIXED_ON_RESUME))
        if fixed:
            details = ", ".join(f"{k} {changed[k][0]} -> {changed[k][1]}" for k in fixed)
            raise ValueError(f"{self.logdir} holds a run whose {', '.join(fixed)} cannot change ({details}): its "
                             "checkpoint, episodes and random streams depend on them. Resume it without those "
                             "flags (dreamer-train --resume RUN), or start a new run with another --logdir.")
        if changed:
            note = ", ".join(f"{k} {a} -> {b}" for k, (a, b) in changed.items())
            print(f"Settings changed on resume (applied, and logged in changes.txt): {note}")
            with (self.logdir / "changes.txt").open("a") as f:
                f.write(f"{datetime.datetime.now().isoformat(timespec='seconds')}: {note}\n")

    # ----------------------------------------------------------------- state
    @property
    def agent_steps(self) -> int:
        return self.buffer.agent_steps

    @property
    def env_frames(self) -> int:
        return self.buffer.agent_steps * self.config.action_repeat

    def _resume(self) -> None:
        path = self.logdir / "checkpoint.pt"
        if not path.exists():
            if any((self.logdir / "episodes").glob("*.npz")) or self.metrics_log.rows or self.eval_log.rows:
                raise ValueError(f"{self.logdir} holds episodes or logs but no checkpoint.pt, so it cannot be resumed "
                                 "exactly. Move its contents away or choose another --logdir.")
            return
        checkpoint = load_checkpoint(path, self.agent.device)
        if not isinstance(checkpoint, dict) or not CHECKPOINT_KEYS <= set(checkpoint):
            raise ValueError(f"{path} is not a checkpoint this version of dreamer-train can resume from (it lacks "
                             f"{sorted(CHECKPOINT_KEYS - set(checkpoint or {}))}). dreamer-eval can still play it "
                             "if it holds an agent; to train, start a new run with another --logdir.")
        self.agent.load_checkpoint(checkpoint["agent"])
        self.updates, self.wall_s, self.next_eval = checkpoint["updates"], checkpoint["wall_s"], checkpoint["next_eval"]
        self.saved_frames = checkpoint["env_frames"]
        self.last_return, self.last_fps = checkpoint["last_return"], checkpoint["last_fps"]
        self.phase = [{k: torch.tensor(v) for k, v in m.items()} for m in checkpoint["phase"]]
        self.buffer.load(episodes=checkpoint["episodes"])
        if self.buffer.total_episodes != checkpoint["episodes"]:
            print(f"warning: the checkpoint counts {checkpoint['episodes']} episodes, {self.logdir / 'episodes'} has "
                  f"{self.buffer.total_episodes} readable ones: training continues, but not exactly as before.")
        rng = checkpoint["rng"]
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        self.buffer.rng.bit_generator.state = rng["replay"]
        self.env.set_rng_state(rng["env"])
        self.metrics_log.reset(checkpoint["rows"]["metrics"])
        self.eval_log.reset(checkpoint["rows"]["eval"])
        print(f"Resuming {self.logdir}: {self.buffer.total_episodes} episodes ({self.env_frames} env frames), "
              f"{self.updates} updates from the checkpoint.")

    def _first_missing_frame(self) -> int:
        rows = self.metrics_log.rows + self.eval_log.rows
        return max((int(r["env_frames"]) for r in rows), default=-1) + 1

    def save_checkpoint(self) -> None:
        """Written to a temporary file and renamed, so a kill mid-write keeps the previous one; never
        written with non-finite parameters, so the checkpoint on disk is always a usable one."""
        if not all(torch.isfinite(p).all() for p in self.agent.parameters()):
            raise TrainingStopped(f"The parameters became NaN or inf by update {self.updates}. " + self._advice())
        state = {"agent": self.agent.checkpoint(), "updates": self.updates, "wall_s": self.wall_s,
                 "next_eval": self.next_eval, "env_frames": self.env_frames, "episodes": self.buffer.total_episodes,
                 "last_return": self.last_return, "last_fps": self.last_fps,
                 "phase": [{k: float(v) for k, v in m.items()} for m in self.phase],
                 "rng": {"torch": torch.get_rng_state(),
                         "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                         "replay": self.buffer.rng.bit_generator.state, "env": self.env.get_rng_state()},
                 "rows": {"metrics": self.metrics_log.rows, "eval": self.eval_log.rows}}
        data = io.BytesIO()
        torch.save(state, data)  # in memory first: torch.save reports a full disk as a RuntimeError
        temporary = self.logdir / "checkpoint.pt.tmp"
        try:
            with temporary.open("wb") as f:
                f.write(data.getbuffer())
            os.replace(temporary, self.logdir / "checkpoint.pt")
            self.saved_frames = self.env_frames
        finally:
            temporary.unlink(missing_ok=True)

    def _advice(self) -> str:
        path = self.logdir / "checkpoint.pt"
        if self.saved_frames is not None:
            kept = f"{path} keeps the last state with finite parameters ({self.saved_frames} env frames)."
        else:
            kept = "No checkpoint was written before this happened, so there is nothing to resume."
        return (f"Training stopped; {kept} Usual causes: a learning rate too high for this reward scale (lower "
                "--model-lr, or try --reward-scale 0.1), exploding gradients (lower --grad-clip), or broken "
                "observations. Lesson 7 shows how to diagnose it.")

    # ----------------------------------------------------------------- phases
    def collect(self) -> bool:
        """One training episode; False if a stop was requested before it ended (it is dropped)."""
        start, frames = time.time(), self.env_frames
        stop = lambda: self.stop_requested  # noqa: E731
        if self.env_frames < self.config.prefill_frames:
            episode = run_episode(self.env, should_stop=stop)  # random actions
        else:
            policy = lambda image, state: self.agent.policy(image, state, explore=True)  # noqa: E731
            episode = run_episode(self.env, policy, self.agent.initial_policy_state(), should_stop=stop)
        if episode is None:
            return False
        self.buffer.add_episode(episode)
        self.last_return = float(episode["reward"].sum())
        self.last_fps = (self.env_frames - frames) / max(time.time() - start, 1e-9)
        return True

    def train_phase(self) -> dict | None:
        """Do the updates the schedule owes; one host sync at the end to log and check them.
        A stop mid-phase keeps the updates done so far in self.phase (the checkpoint holds them)."""
        owed = updates_due(self.env_frames, self.config) - self.updates
        if owed <= 0 and not self.phase:
            return None
        for _ in range(owed):
            if self.stop_requested:
                return None
            batch = self.buffer.sample(self.config.batch_size, self.config.seq_len)
            try:
                self.phase.append(self.agent.update(batch))
            except ValueError as error:  # torch.distributions refuses NaN arguments
                raise TrainingStopped(f"A distribution's arguments became NaN or inf in update {self.updates + 1} "
                                      f"({str(error).splitlines()[0][:200]}). " + self._advice()) from None
            self.updates += 1
        values = {k: torch.stack([m[k] for m in self.phase]).float().cpu().numpy() for k in self.phase[0]}  # one sync a key
        means = {k: float(v.mean(dtype=np.float64)) for k, v in values.items()}
        first, self.phase = self.updates - len(values["model_loss"]), []
        bad = [k for k, v in means.items() if not math.isfinite(v)]
        if bad:
            raise TrainingStopped(f"{', '.join(bad)} became NaN or inf between updates {first} and {self.updates} "
                                  f"({self.env_frames} env frames). " + self._advice())
        return means

    def evaluate_and_draw(self) -> dict | None:
        """Evaluate and draw the run's pictures, with generators of their own (seeded by the env
        frames), so evaluating more or less often never changes training. None if stopped."""
        seed = self.config.seed + 10_000 + self.env_frames
        with torch.random.fork_rng(devices=[self.agent.device] if self.agent.device.type == "cuda" else []):
            torch.manual_seed(seed)
            result = evaluate(self.agent, self.eval_env, self.config.eval_episodes, seed=seed,
                              should_stop=lambda: self.stop_requested)
            if result is None:
                return None
            returns, frames = result
            row = {"env_frames": self.env_frames, "agent_steps": self.agent_steps, "updates": self.updates,
                   "wall_s": round(self.wall_s, 1), "return_mean": round(float(returns.mean()), 2),
                   "return_std": round(float(returns.std()), 2), "returns": " ".join(f"{r:.1f}" for r in returns)}
            self.eval_log.write(row)
            self.tensorboard.scalars("eval", row, self.env_frames)
            self.tensorboard.image("eval/episode", viz.filmstrip(frames, every=max(1, len(frames) // 20), columns=20),
                                   self.env_frames)
            viz.save_gif(frames, self.logdir / "eval.gif", fps=20, scale=2)
            self.draw_open_loop(np.random.default_rng(seed))
        figure = viz.learning_curve(self.eval_log.rows)
        figure.savefig(self.logdir / "learning_curve.png", dpi=100)
        viz.plt.close(figure)
        return row

    def draw_open_loop(self, rng: np.random.Generator, sequences: int = 6, length: int = 50, context: int = 5) -> None:
        length = min(length, max(len(e["image"]) for e in self.buffer.episodes))
        batch = self.buffer.sample(sequences, length, rng=rng)
        images, actions = (torch.as_tensor(batch[k], device=self.agent.device) for k in ("image", "action"))
        model = self.agent.open_loop(images, actions, context)
        viz.save_gif(viz.openl_frames(batch["image"], model), self.logdir / "openl.gif", fps=20)
        figure = viz.openl_strip(batch["image"], model, context)
        figure.savefig(self.logdir / "openl.png", dpi=100)
        self.tensorboard.figure("openl", figure, self.env_frames)
        viz.plt.close(figure)

    # ----------------------------------------------------------------- loop
    def run(self) -> list[dict]:
        """Train until config.total_frames env frames. Each pass: the updates owed, an evaluation when
        due, a checkpoint, then one episode. A stop request (signal) ends it within a step."""
        with use_components(self.components):
            return self._run()

    def _run(self) -> list[dict]:
        c = self.config
        self.lock.acquire()
        # In a terminal the bar redraws in place; in a notebook or a log every redraw stays as a line
        # of the saved output, so there it redraws at most every 30 s (and tqdm's monitor thread,
        # which forces a redraw after `maxinterval`, default 10 s, must wait longer than that).
        terminal = sys.stderr.isatty()
        bar = tqdm(total=c.total_frames, initial=min(self.env_frames, c.total_frames), unit="frame", disable=not self.progress,
                   dynamic_ncols=True, desc=f"{c.env} [{c.preset}]", mininterval=0.1 if terminal else 30,
                   maxinterval=10 if terminal else 60)
        postfix: dict = {}
        start = time.time() - self.wall_s
        consistent = True  # False while an episode is half collected: that state is not worth saving
        try:
            while True:
                means = self.train_phase()
                if self.stop_requested:
                    break
                self.wall_s = time.time() - start
                if means is not None:
                    row = {"env_frames": self.env_frames, "agent_steps": self.agent_steps, "updates": self.updates,
                           "wall_s": round(self.wall_s, 1), "train_return": round(self.last_return, 2),
                           "collect_fps": round(self.last_fps, 1), **{k: round(v, 4) for k, v in means.items()}}
                    self.metrics_log.write(row)
                    self.tensorboard.scalars("train", row, self.env_frames)
                    postfix.update(model=f"{means['model_loss']:.0f}", actor=f"{means['actor_loss']:.2f}")
                finished = self.env_frames >= c.total_frames
                last_eval = int(self.eval_log.rows[-1]["env_frames"]) if self.eval_log.rows else -1
                if (self.env_frames >= max(self.next_eval, c.prefill_frames) or finished) and last_eval != self.env_frames:
                    row = self.evaluate_and_draw()
                    if row is None:
                        break
                    self.next_eval = (self.env_frames // c.eval_every + 1) * c.eval_every
                    postfix["eval"] = f"{row['return_mean']:.0f}±{row['return_std']:.0f}"
                self.save_checkpoint()
                if finished or self.stop_requested:
                    break
                consistent = False
                if not self.collect():
                    break
                consistent = True
                postfix.update(ret=f"{self.last_return:.0f}", upd=self.updates, env_fps=f"{self.last_fps:.0f}")
                bar.set_postfix(postfix, refresh=False)
                bar.update(min(self.env_frames, c.total_frames) - bar.n)
            if self.stop_requested and consistent:
                self.wall_s = time.time() - start
                self.save_checkpoint()
        except OSError as error:
            raise TrainingStopped(
                f"Could not write to {self.logdir} ({error.strerror or error}{': ' + error.filename if error.filename else ''}). "
                + ("The disk is full: free some space, then resume with dreamer-train --resume "
                   f"{self.logdir}; the checkpoint and episodes written before are intact."
                   if error.errno == errno.ENOSPC else
                   f"Make the folder writable, then resume with dreamer-train --resume {self.logdir}.")) from None
        finally:
            bar.close()
            self.close()
        return self.eval_log.rows

    def close(self) -> None:
        """Release the run folder, so another trainer (a resume) may use it."""
        self.tensorboard.close()
        self.lock.release()


# --------------------------------------------------------------------- the command line
@dataclass
class Args:
    """Train DreamerV1 from pixels. Every setting of config.Config is a flag; the preset sets their defaults."""

    config: Config
    resume: pathlib.Path | None = None  # continue the run in this folder; flags given change its settings (logged)
    test: bool = False  # a one-minute end-to-end check with the ci preset, in a temporary folder
    logdir: pathlib.Path | None = None  # run folder; None = runs/<env>-<preset>-seed<seed>
    components: pathlib.Path | None = None  # a .py file of your own exercise functions (the lessons' @save cells): each is checked, then trained with
    progress: bool = True  # show the progress bar


def parse_args(argv: list[str] | None = None) -> Args:
    """Flags from the Config dataclass (tyro: field comments become the help). The defaults come
    from --preset (paper on a GPU, cpu otherwise), from the ci preset with --test, or from the
    run's own config.json with --resume."""
    argv = sys.argv[1:] if argv is None else list(argv)
    first = argparse.ArgumentParser(add_help=False)
    first.add_argument("--preset")
    first.add_argument("--resume")
    first.add_argument("--test", action="store_true")
    known, _ = first.parse_known_args(argv)
    if known.resume:
        base = load_run_config(known.resume)
    else:
        base = make_config("ci" if known.test else known.preset or default_preset())
    return tyro.cli(Args, default=Args(config=base), args=argv, prog="dreamer-train",
                    config=(tyro.conf.OmitArgPrefixes,))


def run_folder(args: Args) -> pathlib.Path:
    if args.resume:
        if args.logdir and args.logdir != args.resume:
            raise ValueError("--resume RUN continues the run in RUN; leave out --logdir (or give the same folder).")
        if not (args.resume / "checkpoint.pt").exists():
            raise ValueError(f"{args.resume} has no checkpoint.pt: there is nothing to resume. Start it anew with "
                             f"--logdir {args.resume} after removing the folder.")
        return args.resume
    if args.test:
        return args.logdir or pathlib.Path(tempfile.mkdtemp(prefix="dreamer-test-"))
    c = args.config
    logdir = args.logdir or pathlib.Path(f"runs/{c.env}-{c.preset}-seed{c.seed}")
    if (logdir / "checkpoint.pt").exists():
        raise ValueError(f"{logdir} already holds a run. Continue it with --resume {logdir}, or choose another --logdir.")
    return logdir


def main(argv: list[str] | None = None, check_components=None) -> int:
    """Exit status: 0 when the run finished, 1 on a fault, 2 on bad input, 130 after Ctrl-C and
    143 after SIGTERM (a checkpoint is saved first; a second signal stops at once).
    `check_components`: the course's exercise checks, which dreamer_lib/cli.py passes in."""
    try:
        args = parse_args(argv)
        logdir = run_folder(args)
        trainer = Trainer(args.config, logdir, args.progress, args.components, check_components)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nStopped during start-up; nothing was trained.", file=sys.stderr)
        return 130
    received = []

    def request_stop(signum, frame):
        if received:  # a second signal: stop now (the checkpoint on disk is the one before)
            os._exit(128 + signum)
        received.append(signum)
        print(f"\nSignal {signal.Signals(signum).name}: saving a checkpoint, then stopping "
              f"(resume with: dreamer-train --resume {logdir}).", file=sys.stderr)
        trainer.stop_requested = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    c = args.config
    print(f"Run folder: {logdir}  (device {trainer.agent.device}, precision {trainer.agent.precision}, "
          f"{'fast' if c.fast else 'plain'} update, preset {c.preset})")
    try:
        rows = trainer.run()
    except TrainingStopped as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if received:
        return 128 + received[0]
    last = rows[-1]
    print(f"Done: {last['env_frames']} env frames, {last['updates']} updates, {float(last['wall_s']) / 60:.1f} min; "
          f"eval return {last['return_mean']} ± {last['return_std']} over {c.eval_episodes} episodes.")
    if args.test:
        print(f"OK: end-to-end check passed; run folder {logdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
