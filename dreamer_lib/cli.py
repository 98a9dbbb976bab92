"""The commands `dreamer-train` and `dreamer-eval`: flags, signals and exit statuses.

    dreamer-train                          # pixel Pendulum, the preset that fits this machine
    dreamer-train --env dmc_walker_walk --preset paper --total-frames 1000000
    dreamer-train --resume runs/pendulum-cpu-seed0 --total-frames 100000   # continue (and extend) a run
    dreamer-train --components my_dreamer.py   # train with your own code from the lessons
    dreamer-train --test                   # one-minute end-to-end check
    dreamer-train --help                   # every setting of config.Config, with its meaning
    dreamer-eval RUN                       # play a run's checkpoint, print the returns, write a GIF
    dreamer-eval pretrained:pendulum-cpu   # the same for a model that ships with the course

Exit status: 0 when the work is done, 1 on a fault (it names its cause; the checkpoint on disk
stays the last good one), 2 on bad input (nothing was written), 130 after Ctrl-C and 143 after
SIGTERM (a checkpoint is saved first; a second signal stops at once).

This is where the two layers meet: `--components FILE` checks a learner's functions with the
course's exercise checks (dreamer_lib/course/components.py) before the trainer uses them, and
`dreamer-eval pretrained:NAME` finds the course's shipped models (dreamer_lib/course/pretrained.py). No
module of the algorithm imports the course, and none imports this one (tests/test_layers.py).
"""
from __future__ import annotations

import argparse
import os
import pathlib
import signal
import sys
import tempfile
import warnings
from dataclasses import dataclass

# A warning reads as one line for people ("warning: ..."), not with the library's source line.
warnings.formatwarning = lambda message, category, *args, **kwargs: f"warning: {message}\n"
STOPPED_AT_START = "\nStopped during start-up; nothing was trained."
PRETRAINED = "pretrained:"  # dreamer-eval pretrained:NAME plays a model that ships with the course
try:  # PyTorch takes a few seconds to load: a Ctrl-C meanwhile ends with a line, not a traceback
    import numpy as np
    import tyro

    from dreamer_lib import viz
    from dreamer_lib.agent import Parts
    from dreamer_lib.config import Config, default_preset, make_config
    from dreamer_lib.evaluate import evaluate as play
    from dreamer_lib.evaluate import load_agent, load_run_config
    from dreamer_lib.run_folder import TrainingStopped
    from dreamer_lib.train import Trainer
except KeyboardInterrupt:
    print(STOPPED_AT_START, file=sys.stderr)
    sys.exit(130)


@dataclass
class Args:
    """Train DreamerV1 from pixels. Every setting of config.Config is a flag; the preset sets their defaults."""

    config: Config
    resume: pathlib.Path | None = None  # continue the run in this folder; flags given change its settings (logged)
    test: bool = False  # a one-minute end-to-end check with the ci preset, in a temporary folder
    logdir: pathlib.Path | None = None  # run folder; None = runs/<env>-<preset>-seed<seed>
    components: pathlib.Path | None = None  # a .py file of your own exercise functions (the lessons' @save cells): each is checked, then trained with
    progress: bool = True  # show the progress bar


def train(argv: list[str] | None = None) -> int:
    try:
        args = parse_train_args(argv)
        logdir = run_folder(args)
        trainer = Trainer(args.config, logdir, load_parts(args, logdir), args.progress)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(STOPPED_AT_START, file=sys.stderr)
        return 130
    received = stop_on_signals(trainer, logdir)
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


def stop_on_signals(trainer, logdir: pathlib.Path) -> list[int]:
    """SIGINT and SIGTERM ask the trainer to save and stop; a second signal stops at once (the
    checkpoint on disk is the one before). Returns the list the first signal is recorded in."""
    received: list[int] = []

    def request_stop(signum, frame):
        if received:
            os._exit(128 + signum)
        received.append(signum)
        print(f"\nSignal {signal.Signals(signum).name}: saving a checkpoint, then stopping "
              f"(resume with: dreamer-train --resume {logdir}).", file=sys.stderr)
        trainer.stop_requested = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    return received


def parse_train_args(argv: list[str] | None = None):
    """Flags from the Config dataclass (tyro: field comments become the help). The defaults come
    from --preset (paper on a GPU, cpu otherwise), from the ci preset with --test, or from the
    run's own config.json with --resume."""
    argv = sys.argv[1:] if argv is None else list(argv)
    first = argparse.ArgumentParser(add_help=False)
    first.add_argument("--preset")
    first.add_argument("--resume")
    first.add_argument("--logdir")
    first.add_argument("--test", action="store_true")
    known, _ = first.parse_known_args(argv)
    for flag in ("resume", "logdir"):
        if getattr(known, flag) is not None and not getattr(known, flag).strip():
            raise ValueError(f"--{flag} is empty: name a run folder, e.g. --{flag} runs/pendulum-cpu-seed0.")
    if known.resume:
        base = load_run_config(known.resume)
    else:
        base = make_config("ci" if known.test else known.preset or default_preset())
    return tyro.cli(Args, default=Args(config=base), args=argv, prog="dreamer-train",
                    config=(tyro.conf.OmitArgPrefixes,))


def run_folder(args) -> pathlib.Path:
    if args.resume:
        if args.logdir and args.logdir != args.resume:
            raise ValueError("--resume RUN continues the run in RUN; leave out --logdir (or give the same folder).")
        if not (args.resume / "checkpoint.pt").exists():
            raise ValueError(f"{args.resume} has no checkpoint.pt: there is nothing to resume. Start it anew with "
                             f"--logdir {args.resume} after removing the folder.")
        return args.resume
    if args.test and not args.logdir:
        folder = tempfile.mkdtemp(prefix="dreamer-test-")
        os.rmdir(folder)  # a fresh name: the trainer creates the folder, and removes it if the run is refused
        return pathlib.Path(folder)
    c = args.config
    logdir = args.logdir or pathlib.Path(f"runs/{c.env}-{c.preset}-seed{c.seed}")
    if logdir.resolve() == pathlib.Path.cwd():
        raise ValueError(f"--logdir {logdir} is the current folder: a run needs a folder of its own, e.g. "
                         f"--logdir runs/{c.env}-{c.preset}-seed{c.seed}.")
    if (logdir / "checkpoint.pt").exists():
        raise ValueError(f"{logdir} already holds a run. Continue it with --resume {logdir}, or choose another --logdir.")
    return logdir


def load_parts(args, logdir: pathlib.Path):
    """The library's parts, or a learner's from --components (or from the copy a resumed run
    keeps), each checked by its exercise check first."""
    saved = logdir / "components.py"
    path = args.components or (saved if args.resume and saved.is_file() else None)
    if path is None:
        return Parts()
    from dreamer_lib.course.components import load_parts as load_checked  # only here does the course load

    return load_checked(path)


def run_or_model(text: str) -> pathlib.Path:
    """The folder that `text` names: a run folder, or pretrained:NAME for a model that ships with
    the course (a ValueError names the available ones if NAME is not among them)."""
    if not text.startswith(PRETRAINED):
        return pathlib.Path(text)
    from dreamer_lib.course.pretrained import pretrained  # the course's models: the course loads here

    return pretrained(text.removeprefix(PRETRAINED))


def evaluate(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dreamer-eval", description="Play a run's checkpoint with the policy's "
                                     "mode (no exploration noise), print each episode's return, write a GIF.")
    parser.add_argument("run", help="a run folder written by dreamer-train, or pretrained:NAME for a model that "
                        "ships with the course (pretrained:pendulum-cpu)")
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--device", default=None, choices=["cpu", "cuda"])
    parser.add_argument("--output", default=None, help="GIF path (default: RUN/eval-<env frames>.gif; for "
                        "pretrained:NAME, NAME-eval-<env frames>.gif in the current folder)")
    args = parser.parse_args(argv)
    try:
        if args.episodes < 1:
            raise ValueError(f"--episodes {args.episodes}: evaluate at least 1 episode.")
        run = run_or_model(args.run)
        agent, env, checkpoint = load_agent(run, args.device)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    returns, frames = play(agent, env, args.episodes)
    for i, value in enumerate(returns):
        print(f"episode {i}: return {value:.1f}")
    print(f"{agent.config.env}, checkpoint at {checkpoint['env_frames']} env frames / {checkpoint['updates']} updates: "
          f"mean {np.mean(returns):.1f} ± {np.std(returns):.1f} over {len(returns)} episodes (policy mode, no noise)")
    # A shipped model's folder belongs to the installed library: its GIF goes to the current folder.
    gif = f"eval-{checkpoint['env_frames']}.gif"
    output = pathlib.Path(args.output or (f"{run.name}-{gif}" if args.run.startswith(PRETRAINED) else run / gif))
    try:
        viz.save_gif(frames, output, fps=20, scale=2)
    except OSError as error:
        print(f"error: could not write {output} ({error.strerror or error}); choose another --output.", file=sys.stderr)
        return 1
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(train())
