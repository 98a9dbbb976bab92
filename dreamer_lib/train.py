"""The training loop: algorithm 1 of the paper. `Trainer.run` is the whole of it, top to bottom.

Three counters, never mixed: env frames (simulator steps = agent steps x action repeat; the
paper's x-axis and the one `--total-frames` counts), agent steps (decisions), and updates.

Exact resume: a checkpoint is written before every episode the agent collects. It holds the
weights, the optimisers, the counters, every random generator (torch, replay sampling, the env)
and the CSV rows so far, so a run killed at any moment and resumed writes the same rows as one
that never stopped (on the CPU, with the same number of threads; CUDA kernels are not bitwise
deterministic). Evaluation and the open-loop picture draw from their own generators, so they
never change training. The files of a run folder: run_folder.py. The command line: cli.py.
"""
from __future__ import annotations

import math
import pathlib
import sys
import time

import numpy as np
import torch
from tqdm import tqdm  # the text bar: it also reads in a saved notebook

from dreamer_lib import viz
from dreamer_lib.agent import DreamerV1, Parts
from dreamer_lib.buffer import ReplayBuffer
from dreamer_lib.config import Config
from dreamer_lib.envs import make_env, run_episode
from dreamer_lib.evaluate import evaluate, seeded
from dreamer_lib.run_folder import RunFolder, TrainingStopped, read_checkpoint, write_checkpoint, write_fault

CHECKPOINT_KEYS = {"agent", "updates", "wall_s", "next_eval", "env_frames", "episodes", "phase", "rng", "rows"}


class Trainer:
    """Builds everything a run needs (envs, run folder, replay buffer, agent) and resumes the run
    the folder holds, if any; a refused run leaves the folder as it was. `parts`: the agent's
    swappable pieces (agent.Parts)."""

    def __init__(self, config: Config, logdir: str | pathlib.Path, parts: Parts = Parts(), progress: bool = True):
        config.validate()
        self.config, self.logdir, self.parts = config, pathlib.Path(logdir), parts
        self.progress, self.stop_requested = progress, False
        # Everything that can fail on bad input comes before the run folder is touched.
        self.env = make_env(config.env, config.action_repeat, config.time_limit, seed=config.seed)
        self.eval_env = make_env(config.env, config.action_repeat, config.time_limit, seed=config.seed + 10_000)
        rows = math.ceil(self.env.time_limit / config.action_repeat) + 1  # an episode's rows, reset included
        if config.seq_len > rows:
            raise ValueError(f"seq_len is {config.seq_len}, but an episode of {config.env} holds at most {rows} frames "
                             f"({self.env.time_limit} env frames at action_repeat {config.action_repeat}, plus the "
                             f"reset frame): no training window fits. Use --seq-len {rows} or less, or a longer "
                             "--time-limit.")
        self.folder = RunFolder(self.logdir, config, parts.source)  # checked and locked; nothing written yet
        try:
            self.buffer = ReplayBuffer(self.logdir / "episodes", config.replay_capacity, seed=config.seed)
            torch.manual_seed(config.seed)
            self.agent = DreamerV1(config, self.env.action_space.shape[0], parts=parts)
            self.updates, self.wall_s, self.next_eval = 0, 0.0, 0
            self.last_return, self.last_fps, self.phase = float("nan"), float("nan"), []
            self.saved_frames: int | None = None  # env frames of the checkpoint on disk, if any
            self._resume()
            self.folder.accept(config, parts.source)
        except BaseException:
            self.folder.abandon()
            raise
        self.postfix: dict = {}  # what the progress bar shows beside the frames

    # ----------------------------------------------------------------- the loop (algorithm 1)
    def run(self) -> list[dict]:
        """Train until config.total_frames env frames. Each pass: the updates the schedule owes,
        an evaluation when due, a checkpoint, then one more episode. A stop request (a signal,
        cli.py) ends it within an update or an env step; the checkpoint then holds every update."""
        c = self.config
        self.folder.lock.acquire()
        bar = progress_bar(c, self.env_frames, self.progress)
        self.started = time.time() - self.wall_s  # the wall clock counts on from the checkpoint's
        try:
            while True:
                self.train_phase()
                self.wall_s = time.time() - self.started
                finished = self.env_frames >= c.total_frames
                if self.evaluation_due(finished) and not self.stop_requested:
                    self.evaluate_and_draw()  # with generators of its own: stopped or not, training is unchanged
                self.save_checkpoint()
                # After the phase and the evaluation, so the bar's last line shows the run's last ones.
                bar.set_postfix(self.postfix, refresh=False)
                bar.update(min(self.env_frames, c.total_frames) - bar.n)
                if finished or self.stop_requested or not self.collect():
                    break  # an episode cut short by a stop is dropped: the checkpoint before it stands
        except OSError as error:
            raise write_fault(self.logdir, error) from None
        finally:
            bar.close()
            self.close()
        return self.folder.evals.rows

    def train_phase(self) -> None:
        """Do the updates the schedule owes, then log their means (one host sync). A stop mid-phase
        keeps the updates done so far in self.phase, which the checkpoint holds."""
        owed = self.parts.updates_due(self.env_frames, self.config) - self.updates
        for _ in range(max(owed, 0)):
            if self.stop_requested:
                return
            try:
                batch = self.buffer.sample(self.config.batch_size, self.config.seq_len)
            except ValueError as error:  # no episode long enough: episodes that ended early
                raise TrainingStopped(f"{error} (at {self.env_frames} env frames)") from None
            try:
                self.phase.append(self.agent.update(batch))
            except ValueError as error:  # torch.distributions refuses NaN arguments
                raise TrainingStopped(f"A distribution's arguments became NaN or inf in update {self.updates + 1} "
                                      f"({str(error).splitlines()[0][:200]}). " + self._advice()) from None
            self.updates += 1
        if not self.phase:
            return
        values = {k: torch.stack([m[k] for m in self.phase]).float().cpu().numpy() for k in self.phase[0]}
        means = {k: float(v.mean(dtype=np.float64)) for k, v in values.items()}
        first, self.phase = self.updates - len(values["model_loss"]), []
        self.wall_s = time.time() - self.started
        bad = [k for k, v in means.items() if not math.isfinite(v)]
        if bad:
            raise TrainingStopped(f"{', '.join(bad)} became NaN or inf between updates {first} and {self.updates} "
                                  f"({self.env_frames} env frames). " + self._advice())
        row = {**self.counters(), "train_return": round(self.last_return, 2), "collect_fps": round(self.last_fps, 1),
               **{k: round(v, 4) for k, v in means.items()}}
        self.folder.metrics.write(row)
        self.folder.tensorboard.scalars("train", row, self.env_frames)
        self.postfix.update(upd=self.updates, model=f"{means['model_loss']:.0f}", actor=f"{means['actor_loss']:.2f}")

    def collect(self) -> bool:
        """One training episode: random actions during the prefill, then the actor with exploration
        noise. False if a stop was requested before it ended (it is dropped)."""
        start, frames = time.time(), self.env_frames
        stop = lambda: self.stop_requested  # noqa: E731
        if self.env_frames < self.config.prefill_frames:
            episode = run_episode(self.env, should_stop=stop)
        else:
            policy = lambda image, state: self.agent.policy(image, state, explore=True)  # noqa: E731
            episode = run_episode(self.env, policy, self.agent.initial_policy_state(), should_stop=stop)
        if episode is None:
            return False
        try:
            self.buffer.add_episode(episode)
        except ValueError as error:  # the env gave NaN rewards or the like
            raise TrainingStopped(f"{self.config.env} produced an episode the agent cannot learn from ({error}) at "
                                  f"{self.env_frames} env frames. The checkpoint before it stands.") from None
        self.last_return = float(episode["reward"].sum())
        self.last_fps = (self.env_frames - frames) / max(time.time() - start, 1e-9)
        self.postfix.update(ret=f"{self.last_return:.0f}", env_fps=f"{self.last_fps:.0f}")
        return True

    def evaluation_due(self, finished: bool) -> bool:
        """Every eval_every env frames once the prefill is done, and at the end; once per frame count."""
        last = int(self.folder.evals.rows[-1]["env_frames"]) if self.folder.evals.rows else -1
        due = self.env_frames >= max(self.next_eval, self.config.prefill_frames) or finished
        return due and last != self.env_frames

    def evaluate_and_draw(self) -> None:
        """Evaluate and draw the run's pictures, with generators of their own (seeded by the env
        frames), so evaluating more or less often never changes training. Nothing is written if
        a stop comes first."""
        c, seed = self.config, self.config.seed + 10_000 + self.env_frames
        with seeded(seed, self.agent.device):
            result = evaluate(self.agent, self.eval_env, c.eval_episodes, seed=seed,
                              should_stop=lambda: self.stop_requested)
            if result is None:
                return
            returns, frames = result
            row = {**self.counters(), "return_mean": round(float(returns.mean()), 2),
                   "return_std": round(float(returns.std()), 2), "returns": " ".join(f"{r:.1f}" for r in returns)}
            self.folder.evals.write(row)
            self.folder.tensorboard.scalars("eval", row, self.env_frames)
            self.folder.tensorboard.image("eval/episode", viz.filmstrip(frames, every=max(1, len(frames) // 20), columns=20),
                                   self.env_frames)
            viz.save_gif(frames, self.logdir / "eval.gif", fps=20, scale=2)
            self.draw_open_loop(np.random.default_rng(seed))
        figure = viz.learning_curve(self.folder.evals.rows)
        figure.savefig(self.logdir / "learning_curve.png", dpi=100)
        viz.plt.close(figure)
        self.next_eval = (self.env_frames // c.eval_every + 1) * c.eval_every
        self.postfix["eval"] = f"{row['return_mean']:.0f}±{row['return_std']:.0f}"

    def draw_open_loop(self, rng: np.random.Generator, sequences: int = 6, length: int = 50, context: int = 5) -> None:
        length = min(length, max(len(e["image"]) for e in self.buffer.episodes))
        batch = self.buffer.sample(sequences, length, rng=rng)
        images, actions = (torch.as_tensor(batch[k], device=self.agent.device) for k in ("image", "action"))
        model = self.agent.open_loop(images, actions, context)
        viz.save_gif(viz.openl_frames(batch["image"], model), self.logdir / "openl.gif", fps=20)
        figure = viz.openl_strip(batch["image"], model, context)
        figure.savefig(self.logdir / "openl.png", dpi=100)
        self.folder.tensorboard.figure("openl", figure, self.env_frames)
        viz.plt.close(figure)

    # ----------------------------------------------------------------- state
    @property
    def agent_steps(self) -> int:
        return self.buffer.agent_steps

    @property
    def env_frames(self) -> int:
        return self.buffer.agent_steps * self.config.action_repeat

    def counters(self) -> dict:
        """The first columns of every CSV row: the three counters and the wall clock."""
        return {"env_frames": self.env_frames, "agent_steps": self.agent_steps, "updates": self.updates,
                "wall_s": round(self.wall_s, 1)}

    def save_checkpoint(self) -> None:
        """Never written with non-finite parameters, so the checkpoint on disk is always usable."""
        if not all(torch.isfinite(p).all() for p in self.agent.parameters()):
            raise TrainingStopped(f"The parameters became NaN or inf by update {self.updates}. " + self._advice())
        write_checkpoint(self.logdir / "checkpoint.pt", {
            "agent": self.agent.checkpoint(), "updates": self.updates, "wall_s": self.wall_s,
            "next_eval": self.next_eval, "env_frames": self.env_frames, "episodes": self.buffer.total_episodes,
            "last_return": self.last_return, "last_fps": self.last_fps,
            "phase": [{k: float(v) for k, v in m.items()} for m in self.phase], "threads": torch.get_num_threads(),
            "rng": {"torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                    "replay": self.buffer.rng.bit_generator.state, "env": self.env.get_rng_state()},
            "rows": {"metrics": self.folder.metrics.rows, "eval": self.folder.evals.rows}})
        self.saved_frames = self.env_frames

    def _resume(self) -> None:
        path = self.logdir / "checkpoint.pt"
        if not path.exists():
            if any((self.logdir / "episodes").glob("*.npz")) or self.folder.metrics.path.exists() or \
                    self.folder.evals.path.exists():
                raise ValueError(f"{self.logdir} holds episodes or logs but no checkpoint.pt, so it cannot be resumed "
                                 "exactly. Move its contents away or choose another --logdir.")
            return
        checkpoint = read_checkpoint(path, self.agent.device)
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
                  f"{self.buffer.total_episodes} usable ones (skipped files are named above): training continues, but not "
                  "exactly as before.")
        threads = checkpoint.get("threads", torch.get_num_threads())
        if threads != torch.get_num_threads():
            print(f"note: this run trained with {threads} CPU threads and now has {torch.get_num_threads()}: it "
                  f"continues, but not bit for bit as it would have (OMP_NUM_THREADS={threads} keeps it exact).")
        rng = checkpoint["rng"]
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        self.buffer.rng.bit_generator.state = rng["replay"]
        self.env.set_rng_state(rng["env"])
        self.folder.metrics.reset(checkpoint["rows"]["metrics"])
        self.folder.evals.reset(checkpoint["rows"]["eval"])
        print(f"Resuming {self.logdir}: {self.buffer.total_episodes} episodes ({self.env_frames} env frames), "
              f"{self.updates} updates from the checkpoint.")

    def _advice(self) -> str:
        path = self.logdir / "checkpoint.pt"
        if self.saved_frames is not None:
            kept = f"{path} keeps the last state with finite parameters ({self.saved_frames} env frames)."
        else:
            kept = "No checkpoint was written before this happened, so there is nothing to resume."
        return (f"Training stopped; {kept} Usual causes: a learning rate too high for this reward scale (lower "
                "--model-lr, or try --reward-scale 0.1), exploding gradients (lower --grad-clip), or broken "
                "observations. Lesson 7 shows how to diagnose it.")

    def close(self) -> None:
        """Release the run folder, so another trainer (a resume) may use it."""
        self.folder.close()


def progress_bar(config: Config, env_frames: int, enabled: bool) -> tqdm:
    """In a terminal the bar redraws in place; in a notebook or a log every redraw stays as a line
    of the saved output, so there it redraws at most every 30 s (and tqdm's monitor thread, which
    forces a redraw after `maxinterval`, default 10 s, must wait longer than that)."""
    terminal = sys.stderr.isatty()
    return tqdm(total=config.total_frames, initial=min(env_frames, config.total_frames), unit="frame",
                disable=not enabled, dynamic_ncols=True, desc=f"{config.env} [{config.preset}]",
                mininterval=0.1 if terminal else 30, maxinterval=10 if terminal else 60)
