"""Ship a trained run with the course:  python tools/export_pretrained.py RUN NAME [--episodes K]

From a finished dreamer-train run folder RUN, writes dreamer_lib/course/models/NAME/ (or
$DREAMER_MODELS/NAME), which `pretrained("NAME")`, `dreamer-eval pretrained:NAME` and the lessons
load (dreamer_lib/course/pretrained.py):

    config.json   the run's settings (the device set to auto: the learner's machine decides)
    model.pt      the agent's weights in fp16, no optimiser state, checksummed as a checkpoint
    eval.csv      the run's eval curve
    metrics.csv   the run's training metrics (lesson 7 plots the actor's entropy and gradient norm)
    episodes/     the run's first K episodes (random actions) and last K (the trained policy), as
                  its replay buffer stored them: lesson 7's debugger replays them and trains on them
    CARD.md       tools/pretrained_card.md filled in: the command, the commit, the machine, the eval
                  curve, what it can and cannot do, its size, and the check that the tests repeat.
                  Lines marked TODO are for the trainer to write.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import pathlib
import platform
import re
import shlex
import shutil
import string
import subprocess
import sys

import numpy as np
import torch

from dreamer_lib.cli import parse_train_args
from dreamer_lib.config import Config, make_config
from dreamer_lib.course.pretrained import CHECK_EPISODES, CHECK_SEED, check_returns, models_dir
from dreamer_lib.envs import run_episode
from dreamer_lib.evaluate import load_agent, load_run_config
from dreamer_lib.run_folder import CSVLog, write_checkpoint

ROOT = pathlib.Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "tools" / "pretrained_card.md"


def export(run: pathlib.Path, name: str, keep: int = 3) -> pathlib.Path:
    """Write the model folder NAME from the finished run in `run`; returns the folder."""
    if keep < 1:
        raise ValueError(f"--episodes {keep}: lesson 7's debugger needs at least the first and the last episode.")
    if not re.fullmatch(r"[\w.-]+", name):
        raise ValueError(f"{name!r}: name a model with letters, digits, '.', '-' and '_' only (e.g. pendulum-cpu).")
    target = models_dir() / name
    if target.exists():
        raise ValueError(f"{target} exists: remove it first (git rm -r) to ship another model as {name!r}.")
    agent, env, checkpoint = load_agent(run, device="cpu")
    if checkpoint["env_frames"] < agent.config.total_frames:
        raise ValueError(f"{run} stopped at {checkpoint['env_frames']} of its {agent.config.total_frames} env frames: "
                         f"finish it first (dreamer-train --resume {run}).")
    if (run / "components.py").exists():
        raise ValueError(f"{run} was trained with a learner's own code (components.py): a shipped model is the "
                         "library's. Export a run that dreamer-train trained without --components.")
    weights = {key: value.half() if value.is_floating_point() else value for key, value in agent.state_dict().items()}
    if not all(torch.isfinite(value).all() for value in weights.values()):
        raise ValueError("Some weights lie beyond fp16's range (65504) and would become inf: this run cannot ship "
                         "in fp16.")
    files = sorted(path for path in (run / "episodes").glob("*.npz") if not path.name.endswith(".tmp.npz"))
    if not files:
        raise ValueError(f"{run / 'episodes'} holds no episode files: lesson 7's debugger needs some to replay.")
    target.mkdir(parents=True)
    try:  # a failed export leaves no half-written model behind
        # The device is the learner's to choose: "auto" loads on their GPU, or on their CPU if they have none.
        (target / "config.json").write_text(load_run_config(run).replace(device="auto").to_json())
        for log in ("eval.csv", "metrics.csv"):
            shutil.copyfile(run / log, target / log)
        (target / "episodes").mkdir()
        for path in sorted(set(files[:keep] + files[-keep:])):
            shutil.copyfile(path, target / "episodes" / path.name)
        write_checkpoint(target / "model.pt", {"agent": {"model": weights}, "env_frames": checkpoint["env_frames"],
                                               "updates": checkpoint["updates"]})
        (target / "CARD.md").write_text(card(run, target, agent, env, checkpoint, files))
    except BaseException:
        shutil.rmtree(target)
        raise
    return target


def card(run: pathlib.Path, target: pathlib.Path, agent, env, checkpoint: dict, files: list[pathlib.Path]) -> str:
    """CARD.md: the template, filled in with the run's numbers and the check of the shipped weights
    (loaded back from model.pt, as a learner loads them)."""
    shipped_agent, shipped_env, _ = load_agent(target, device="cpu")
    returns = check_returns(shipped_agent, shipped_env)
    config, rows = load_run_config(run), CSVLog(run / "eval.csv").read()  # the run's, not the export's device
    episodes = sorted((target / "episodes").iterdir())
    shown = lambda row: f"{float(row['return_mean']):.1f} ± {float(row['return_std']):.1f}"  # noqa: E731
    best = max(rows, key=lambda row: float(row["return_mean"]))
    changes = run / "changes.txt"
    return string.Template(TEMPLATE.read_text()).substitute(
        name=target.name, run=shlex.quote(str(run)), env=config.env, preset=config.preset, seed=config.seed,
        frames=f"{checkpoint['env_frames']:,}", updates=f"{checkpoint['updates']:,}",
        command=training_command(config),
        changes=f"\n\n```\n{changes.read_text().strip()}\n```" if changes.exists() else "none",
        commit=code_commit(files[0]), machine=cpu_model(), threads=checkpoint.get("threads", "unrecorded"),
        minutes=f"{checkpoint['wall_s'] / 60:.1f}", date=datetime.date.today().isoformat(), torch=torch.__version__,
        eval_episodes=config.eval_episodes,
        table="\n".join(f"| {int(row['env_frames']):,} | {float(row['return_mean']):.1f} | "
                        f"{float(row['return_std']):.1f} |" for row in rows),
        final=shown(rows[-1]), last_three=", ".join(shown(row) for row in rows[-3:]),
        best=f"{shown(best)} at {int(best['env_frames']):,} env frames",
        check_mean=f"{returns.mean():.1f}", random_mean=f"{random_returns(env).mean():.1f}",
        action_repeat=config.action_repeat, time_limit=env.time_limit,
        model_size=size(target / "model.pt"), parameters=f"{sum(p.numel() for p in agent.parameters()):,}",
        episodes_size=size(*episodes), episode_count=len(episodes),
        episode_table=episode_table(config, files, {path.name for path in episodes}),
        check_seed=CHECK_SEED, check_episodes=CHECK_EPISODES, returns=" ".join(f"{r:.1f}" for r in returns),
        fp32_returns=" ".join(f"{r:.1f}" for r in check_returns(agent, env)))


def random_returns(env) -> np.ndarray:
    """Uniformly random actions from the check's start states: what the model's returns compare with."""
    env.action_space.seed(CHECK_SEED)
    return np.array([run_episode(env, seed=CHECK_SEED if i == 0 else None)["reward"].sum()
                     for i in range(CHECK_EPISODES)])


def episode_table(config: Config, files: list[pathlib.Path], shipped: set[str]) -> str:
    """One row per shipped episode: collected during the prefill (random actions) or by the policy."""
    lines, frames = [], 0  # env frames collected before each episode
    for path in files:
        if path.name in shipped:
            with np.load(path) as episode:
                total = float(episode["reward"].sum())
            how = "random actions (prefill)" if frames < config.prefill_frames else "the policy, with exploration noise"
            lines.append(f"| `{path.name}` | {how} | {total:.1f} |")
        frames += int(path.stem.split("-")[1]) * config.action_repeat  # the buffer names a file INDEX-STEPS.npz
    return "\n".join(lines)


def training_command(config: Config) -> str:
    """The dreamer-train command for this config: the preset, seed and frames, and every setting
    that differs from the preset. Parsed back, it must give the same config."""
    preset = make_config(config.preset)
    flags = {"preset": config.preset, "seed": config.seed, "total_frames": config.total_frames}
    flags |= {f.name: getattr(config, f.name) for f in dataclasses.fields(Config)
              if getattr(config, f.name) != getattr(preset, f.name)}
    argv = []
    for key, value in flags.items():
        flag = "--" + re.sub(r"(?<=[a-z0-9])_(?=[a-z0-9])", "-", key)  # as tyro spells it: lambda_ -> --lambda_
        argv += [flag if value else f"--no-{flag[2:]}"] if isinstance(value, bool) else [flag, str(value)]
    if parse_train_args(argv).config != config:
        raise ValueError(f"The command made for the card ({shlex.join(argv)}) does not give the run's config.")
    return shlex.join(["dreamer-train", *argv])


def code_commit(first_episode: pathlib.Path) -> str:
    """The code the run trained with: its code.txt (a line per start and resume, which dreamer-train
    writes), or for a run from before code.txt, HEAD at export time, saying whether a commit since
    the run's first episode, or an uncommitted change, touched dreamer_lib/."""
    recorded = first_episode.parent.parent / "code.txt"
    if recorded.exists():
        return "recorded by dreamer-train (code.txt), per start and resume: " + "; ".join(
            f"`{line}`" for line in recorded.read_text().splitlines())
    started = datetime.datetime.fromtimestamp(first_episode.stat().st_mtime).isoformat(timespec="seconds")

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True).stdout

    try:
        head = git("rev-parse", "HEAD").strip()
        since = git("log", f"--since={started}", "--format=%h", "--", "dreamer_lib").split()
        changed = git("status", "--porcelain", "--", "dreamer_lib").splitlines()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no git checkout at export time, and the run folder does not record its commit)"
    return (f"`{head}`, HEAD at export time: the run folder does not record the commit it was trained with. "
            + (f"Since its first episode ({started}), commits {', '.join(since)} changed dreamer_lib/: it may have "
               "trained with the code before them. " if since else f"No commit since its first episode ({started}) "
               "changed dreamer_lib/. ")
            + (f"At export, dreamer_lib/ had {len(changed)} uncommitted change(s): "
               f"{', '.join(line[3:] for line in changed)}." if changed else "At export, dreamer_lib/ had no "
               "uncommitted change."))


def cpu_model() -> str:
    info = pathlib.Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in (info.read_text() if info.exists() else "").splitlines()
             if line.startswith("model name")]
    return f"{names[0]} (the machine of the export)" if names else platform.machine()


def size(*paths: pathlib.Path) -> str:
    total = sum(path.stat().st_size for path in paths)
    return f"{total / 1e6:.2f} MB" if total >= 1e6 else f"{total / 1e3:.1f} kB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="export_pretrained.py", description=__doc__.splitlines()[0])
    parser.add_argument("run", type=pathlib.Path, help="a finished dreamer-train run folder")
    parser.add_argument("name", help="the model's name, e.g. pendulum-cpu")
    parser.add_argument("--episodes", type=int, default=3, metavar="K",
                        help="ship the run's first K and last K episodes (default 3)")
    args = parser.parse_args(argv)
    try:
        target = export(args.run, args.name, args.episodes)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for path in sorted(target.rglob("*")):
        if path.is_file():
            print(f"{size(path):>10}  {path}")
    print(f"wrote {target}: fill in the TODO lines of {target / 'CARD.md'}, then commit the folder.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
