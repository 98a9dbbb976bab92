"""Environments (pixels, action scaling, action repeat, time limits, helpful errors) and the
training loop end to end: run folder contents, resuming after a crash, NaN guard, CLI errors."""
from __future__ import annotations

import csv
import hashlib
import json
import math
import shutil

import gymnasium as gym
import numpy as np
import pytest
import torch
from PIL import Image

from dreamer_lib import train
from dreamer_lib.buffer import ReplayBuffer
from dreamer_lib.config import Config, make_config
from dreamer_lib.envs import make_env, run_episode
from dreamer_lib.train import Trainer, TrainingStopped, updates_due

PENDULUM_WORST_REWARD = -(math.pi ** 2 + 0.1 * 8 ** 2 + 0.001 * 2 ** 2)  # per frame, Pendulum-v1's cost


# ---------------------------------------------------------------------------- environments
def test_pendulum_gives_64x64_uint8_frames_and_unit_box_actions():
    env = make_env("pendulum", seed=0)
    frame, _ = env.reset()
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8
    assert frame.min() < frame.max()  # a picture, not a blank
    assert isinstance(env.action_space, gym.spaces.Box) and env.action_space.shape == (1,)
    assert np.all(env.action_space.low == -1) and np.all(env.action_space.high == 1)
    assert env.observation_space.shape == (64, 64, 3) and env.observation_space.dtype == np.uint8
    frame2, reward, terminated, truncated, _ = env.step(np.array([1.0], np.float32))
    assert frame2.shape == (64, 64, 3) and frame2.dtype == np.uint8 and np.isscalar(reward)
    env.close()


def test_action_repeat_sums_rewards_of_the_scaled_action():
    seed = 3
    env = make_env("pendulum", action_repeat=2, seed=seed)
    env.reset()
    raw = gym.make("Pendulum-v1")  # the same env by hand: torque in [-2, 2], two frames per action
    raw.reset(seed=seed)
    raw.reset()  # make_env's seeding reset, then the episode's reset
    np.testing.assert_array_equal(env.env.unwrapped.state, raw.unwrapped.state)
    for a in [1.0, -1.0, 0.25, -0.6, 0.0, 1.7, -3.0]:
        _, reward, _, _, _ = env.step(np.array([a], np.float32))
        torque = 2.0 * np.clip(a, -1, 1)  # [-1, 1] -> [-2, 2]; out-of-range actions clip
        want = sum(raw.step(np.array([torque], np.float32))[1] for _ in range(2))
        assert reward == pytest.approx(want, rel=1e-6, abs=1e-6)
        np.testing.assert_allclose(env.env.unwrapped.state, raw.unwrapped.state, rtol=1e-6)
    env.close()
    raw.close()


def test_pendulum_episode_is_100_agent_steps_of_2_frames():
    env = make_env("pendulum", seed=0)
    episode = run_episode(env)
    assert episode["image"].shape == (101, 64, 64, 3)  # the reset row + 100 steps
    assert episode["action"].shape == (101, 1) and np.all(episode["action"][0] == 0)
    assert np.all(np.abs(episode["action"]) <= 1)
    assert episode["reward"][0] == 0 and np.all(episode["reward"] <= 0)
    assert np.all(episode["reward"][1:] >= 2 * PENDULUM_WORST_REWARD - 1e-4)
    assert np.all(episode["discount"] == 1)  # truncated by time, never terminal
    assert env._frames == 200
    env.close()


def test_time_limit_counts_env_frames():
    env = make_env("pendulum", action_repeat=3, time_limit=100, seed=0)
    episode = run_episode(env)
    assert len(episode["reward"]) - 1 == 34  # 33 steps are 99 frames; the 34th reaches 102
    env.close()


def test_discrete_action_env_is_refused():
    with pytest.raises(ValueError, match=r"CartPole-v1 has Discrete\(2\) actions.*continuous actions"):
        make_env("CartPole-v1")


def test_unknown_env_names_the_supported_ones():
    with pytest.raises(ValueError, match=r"(?s)Unknown environment 'NoSuchEnv-v9'.*Supported") as info:
        make_env("NoSuchEnv-v9")
    for name in ("pendulum", "dmc_walker_walk", "MountainCarContinuous-v0"):
        assert name in str(info.value)


# ---------------------------------------------------------------------------- schedule
def test_updates_due_schedule():
    ci = make_config("ci")  # prefill 400, then 2 updates every 200 frames
    assert (ci.prefill_frames, ci.train_every, ci.train_steps) == (400, 200, 2)
    expected = {0: 0, 100: 0, 399: 0, 400: 2, 401: 2, 599: 2, 600: 4, 799: 4, 800: 6, 1000: 8}
    assert {f: updates_due(f, ci) for f in expected} == expected
    paper = make_config("paper")  # prefill 5000, then 100 updates every 1000 frames
    assert updates_due(4999, paper) == 0
    assert updates_due(5000, paper) == 100
    assert updates_due(5999, paper) == 100
    assert updates_due(6000, paper) == 200
    assert updates_due(1_000_000, paper) == 100 * (1 + 995)


# ---------------------------------------------------------------------------- training
def frames_on_disk(run) -> int:
    """Env frames recorded by the episode files: (rows - 1) agent steps x action repeat 2."""
    total = 0
    for path in (run / "episodes").glob("*.npz"):
        with np.load(path) as data:
            total += len(data["reward"]) - 1
    return total * 2


def file_hashes(run) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (run / "episodes").glob("*.npz")}


def read_csv(path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def read_checkpoint(run) -> dict:
    return torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    """A short end-to-end ci run, stopped at 600 env frames: 6 episodes, 4 updates. Shared: tests
    that change the folder work on a copy (run_copy)."""
    logdir = tmp_path_factory.mktemp("base") / "run"
    config = make_config("ci", steps=600)
    trainer = Trainer(config, logdir, progress=False)
    rows = trainer.run()
    return logdir, config, trainer, rows


@pytest.fixture
def run_copy(base_run, tmp_path):
    logdir = tmp_path / "run"
    shutil.copytree(base_run[0], logdir)
    return logdir


def test_end_to_end_training_writes_the_run_folder(base_run):
    logdir, config, trainer, rows = base_run
    for name in ("config.json", "metrics.csv", "eval.csv", "checkpoint.pt", "eval.gif", "openl.gif", "openl.png",
                 "learning_curve.png"):
        assert (logdir / name).is_file() and (logdir / name).stat().st_size > 0, name
    assert Config.from_json((logdir / "config.json").read_text()) == config
    assert json.loads((logdir / "config.json").read_text())["preset"] == "ci"

    # 600 frames = 6 episodes of 50 agent steps (time limit 100 frames, repeat 2)
    episodes = sorted((logdir / "episodes").glob("*.npz"))
    assert len(episodes) == 6 and frames_on_disk(logdir) == 600 == trainer.env_frames
    for path in episodes:
        with np.load(path) as data:
            assert data["image"].shape == (51, 64, 64, 3) and data["action"].shape == (51, 1)
    assert trainer.updates == updates_due(600, config) == 4

    metrics = read_csv(logdir / "metrics.csv")
    assert [int(r["env_frames"]) for r in metrics] == [400, 600]  # after prefill, then every 200 frames
    assert [int(r["updates"]) for r in metrics] == [2, 4]
    assert all(math.isfinite(float(r["model_loss"])) for r in metrics)
    assert rows == read_csv(logdir / "eval.csv")
    eval_frames = [int(r["env_frames"]) for r in rows]
    assert eval_frames[0] == 400 and eval_frames[-1] == 600 and eval_frames == sorted(set(eval_frames))
    for row in rows:  # one eval episode of 100 frames
        assert 100 * PENDULUM_WORST_REWARD - 1 <= float(row["return_mean"]) <= 0
        assert row["returns"] == f"{float(row['return_mean']):.1f}"

    checkpoint = read_checkpoint(logdir)
    assert (checkpoint["updates"], checkpoint["env_frames"]) == (4, 600)
    assert checkpoint["next_eval"] == 800  # the next multiple of eval_every (400) after the last eval
    with Image.open(logdir / "eval.gif") as gif:
        # the eval episode at 2x; PIL merges identical consecutive frames, so at most 51
        assert gif.size == (128, 128) and 25 < gif.n_frames <= 51
    with Image.open(logdir / "openl.gif") as gif:
        assert gif.size == (6 * 64, 3 * 64) and 25 < gif.n_frames <= 50  # truth / model / error rows
    for name in ("openl.png", "learning_curve.png"):
        with Image.open(logdir / name) as image:
            assert image.format == "PNG"


def test_resume_after_a_crash_keeps_counters_and_catches_up_owed_updates(run_copy):
    logdir = run_copy
    saved = read_checkpoint(logdir)
    assert (saved["updates"], saved["env_frames"]) == (4, 600)
    # The crash: two more episodes were collected and written, then the process died before the
    # next checkpoint (e.g. SIGKILL). Those 200 frames owe updates_due(800) - 4 = 2 updates.
    collector = ReplayBuffer(logdir / "episodes")
    env = make_env("pendulum", 2, 100, seed=99)
    for _ in range(2):
        collector.add_episode(run_episode(env))
    env.close()
    before = file_hashes(logdir)
    assert len(before) == 8
    base_eval = logdir.parent / "base_eval.csv"
    shutil.copy(logdir / "eval.csv", base_eval)

    config = make_config("ci", steps=1000)
    trainer = Trainer(config, logdir, progress=False)
    assert trainer.env_frames == frames_on_disk(logdir) == 800
    assert trainer.agent_steps == 400
    assert trainer.updates == 4 and trainer.next_eval == saved["next_eval"]
    saved_evals = len(read_csv(base_eval))
    assert len(trainer.buffer) == 8

    means = trainer.train_phase()  # the owed updates, before any new data
    assert trainer.updates == updates_due(800, config) == 6
    assert means is not None and all(math.isfinite(v) for v in means.values())

    trainer.run()
    assert trainer.updates == updates_due(1000, config) == 8
    after = file_hashes(logdir)
    assert {k: after[k] for k in before} == before  # no episode lost or rewritten
    assert len(after) == 10 and frames_on_disk(logdir) == 1000
    checkpoint = read_checkpoint(logdir)
    assert (checkpoint["updates"], checkpoint["env_frames"]) == (8, 1000)
    evals = read_csv(logdir / "eval.csv")
    assert evals[:saved_evals] == read_csv(base_eval) and len(evals) > saved_evals
    assert int(evals[-1]["env_frames"]) == 1000
    metrics = read_csv(logdir / "metrics.csv")
    assert [int(r["updates"]) for r in metrics] == [2, 4, 8]  # 4 -> 6 was caught up outside run()
    assert int(metrics[-1]["env_frames"]) == 1000


def test_resume_with_another_architecture_is_refused(run_copy):
    with pytest.raises(ValueError, match=r"other settings for \['deter_size'\]"):
        Trainer(make_config("ci", deter_size=32), run_copy, progress=False)
    assert Config.from_json((run_copy / "config.json").read_text()).deter_size == 16  # untouched


def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(run_copy, monkeypatch):
    logdir = run_copy
    good = (logdir / "checkpoint.pt").read_bytes()
    trainer = Trainer(make_config("ci", steps=1000), logdir, progress=False)

    def broken_update(batch):
        with torch.no_grad():
            for p in trainer.agent.parameters():
                p.fill_(float("nan"))
        return {"model_loss": torch.tensor(float("nan")), "actor_loss": torch.tensor(0.5)}

    monkeypatch.setattr(trainer.agent, "update", broken_update)
    with pytest.raises(TrainingStopped, match=r"model_loss became NaN or inf.*keeps the last good state"):
        trainer.run()
    assert (logdir / "checkpoint.pt").read_bytes() == good
    checkpoint = read_checkpoint(logdir)
    assert all(torch.isfinite(v).all() for v in checkpoint["agent"]["model"].values())


def test_stop_requested_during_collection_stops_cleanly(run_copy, monkeypatch):
    logdir = run_copy
    trainer = Trainer(make_config("ci", steps=1000), logdir, progress=False)
    collect = trainer.collect

    def collect_then_signal():
        collect()
        if trainer.env_frames >= 800:  # this episode crosses a train_every boundary: 2 updates owed
            trainer.stop_requested = True

    monkeypatch.setattr(trainer, "collect", collect_then_signal)
    trainer.run()
    checkpoint = read_checkpoint(logdir)
    assert checkpoint["env_frames"] == 800 and checkpoint["updates"] == 4  # owed updates wait for resume


def test_evaluations_are_eval_every_frames_apart(run_copy, monkeypatch):
    # Only the schedule is under test: collection adds a copy of a stored episode (100 frames),
    # training and evaluation are replaced by records of when they happen.
    logdir = run_copy
    with np.load(next((logdir / "episodes").glob("*.npz"))) as data:
        episode = dict(data)
    assert len(episode["reward"]) == 51
    shutil.rmtree(logdir / "episodes")  # a fresh run in the same folder
    (logdir / "checkpoint.pt").unlink()
    (logdir / "eval.csv").unlink()
    trainer = Trainer(make_config("ci", steps=2000), logdir, progress=False)
    assert trainer.env_frames == 0
    evaluated = []

    def fake_eval():
        evaluated.append(trainer.env_frames)
        return {"return_mean": 0.0, "return_std": 0.0}

    monkeypatch.setattr(trainer, "collect", lambda: trainer.buffer.add_episode(episode, save=False))
    monkeypatch.setattr(trainer, "train_phase", lambda: None)
    monkeypatch.setattr(trainer, "evaluate_and_draw", fake_eval)
    trainer.run()
    assert evaluated == [400, 800, 1200, 1600, 2000]


def test_resumed_run_collects_new_episodes_not_replays(run_copy):
    trainer = Trainer(make_config("ci", steps=1000), run_copy, progress=False)
    starts = [e["image"][0] for e in trainer.buffer.episodes]
    trainer.collect()
    new_start = trainer.buffer.episodes[-1]["image"][0]
    assert not any(np.array_equal(new_start, s) for s in starts)


def test_cli_refuses_discrete_env(tmp_path, capsys):
    assert train.main(["--env", "CartPole-v1", "--preset", "ci", "--logdir", str(tmp_path / "run"),
                       "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "continuous actions" in err


def test_cli_resume_of_a_folder_without_a_run(tmp_path, capsys):
    assert train.main(["--resume", str(tmp_path), "--no-progress"]) == 2
    assert "not a dreamer-train run folder" in capsys.readouterr().err


def test_set_parses_settings_with_their_config_types():
    values = train.parse_settings(["free_nats=0", "horizon=4", "use_continue=true", "env=dmc_walker_walk",
                                   "time_limit=none", "steps=1e5"])
    assert values == {"free_nats": 0.0, "horizon": 4, "use_continue": True, "env": "dmc_walker_walk",
                      "time_limit": None, "steps": 100_000}
    assert isinstance(values["free_nats"], float) and isinstance(values["horizon"], int)


@pytest.mark.parametrize("setting, message", [("free_nat=0", "KEY one of"), ("horizon", "KEY=VALUE"),
                                              ("horizon=abc", "horizon takes a value of type int"),
                                              ("use_continue=maybe", "use_continue takes a value of type bool")])
def test_set_refuses_unknown_or_mistyped_settings(tmp_path, capsys, setting, message):
    assert train.main(["--preset", "ci", "--set", setting, "--logdir", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --set") and message in err
