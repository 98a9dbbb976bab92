"""Environments (pixels, action scaling, action repeat, time limits, helpful errors) and the
training schedule. The trainer itself: tests/test_trainer.py."""
from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest

from dreamer_lib.agent import DreamerV1
from dreamer_lib.config import make_config
from dreamer_lib.envs import make_env, run_episode
from dreamer_lib.config import updates_due
from dreamer_lib.train import Trainer

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


def test_pendulum_frames_are_gymnasiums_picture_drawn_on_a_smaller_canvas():
    """Against gymnasium's own 500 x 500 drawing shrunk with PIL's bilinear filter, step for step
    with the same torques: the same picture, off by a fraction of a grey level on average."""
    from PIL import Image

    env = make_env("pendulum", action_repeat=1)
    reference = gym.make("Pendulum-v1", render_mode="rgb_array")
    frame, _ = env.reset(seed=3)
    reference.reset(seed=3)
    rng = np.random.default_rng(0)
    differences = []
    for _ in range(30):
        action = rng.uniform(-1, 1, size=1).astype(np.float32)
        frame, *_ = env.step(action)
        reference.step(2 * action)  # Pendulum's torque range is [-2, 2]
        big = reference.render()
        assert big.shape == (500, 500, 3)
        want = np.asarray(Image.fromarray(big).resize((64, 64), Image.BILINEAR), float)
        differences.append(np.abs(frame.astype(float) - want).mean())
    assert np.mean(differences) < 0.25, np.mean(differences)  # grey levels of 255; a 128 canvas gives ~0.3


def test_a_frame_of_the_right_size_reaches_the_actor_even_if_flipped():
    """DMC (MuJoCo) renders 64x64 frames upside down and flips them with a view of negative
    strides; the actor must still read them (torch refuses such arrays)."""
    from dreamer_lib.envs import resize

    frame = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)[::-1]
    kept = resize(frame, 64)
    assert np.array_equal(kept, frame) and kept.flags.c_contiguous
    agent = DreamerV1(make_config("ci"), 1)
    action, _ = agent.policy(kept, agent.initial_policy_state(), explore=False)
    assert action.shape == (1,)


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
    assert np.all(episode["not_terminal"] == 1)  # truncated by time, never terminal
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
    assert (ci.prefill_frames, ci.train_every, ci.train_updates) == (400, 200, 2)
    expected = {0: 0, 100: 0, 399: 0, 400: 2, 401: 2, 599: 2, 600: 4, 799: 4, 800: 6, 1000: 8}
    assert {f: updates_due(f, ci) for f in expected} == expected
    paper = make_config("paper")  # prefill 5000, then 100 updates every 1000 frames
    assert updates_due(4999, paper) == 0
    assert updates_due(5000, paper) == 100
    assert updates_due(5999, paper) == 100
    assert updates_due(6000, paper) == 200
    assert updates_due(1_000_000, paper) == 100 * (1 + 995)


def test_progress_bar_outside_a_terminal_redraws_rarely(tmp_path, capsys):
    """In a notebook or a log every redraw stays in the saved output: a short run leaves its first
    and last state (and one per 30 s), not one line per episode."""
    Trainer(make_config("ci", total_frames=800, eval_every=10_000), tmp_path / "run", progress=True).run()
    bar = capsys.readouterr().err
    assert "800/800" in bar and bar.count("\r") <= 3, bar


def test_progress_bar_outside_a_terminal_is_not_redrawn_by_tqdms_monitor(tmp_path, monkeypatch):
    """tqdm's monitor thread forces a redraw once `maxinterval` (default 10 s) has passed since the
    last one; outside a terminal that must not undercut the 30-s minimum (a 31-minute lesson 6 run
    left ~110 redraws in its saved output)."""
    import dreamer_lib.train as train_module
    bars = []

    class RecordingBar(train_module.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            bars.append(self)

    monkeypatch.setattr(train_module, "tqdm", RecordingBar)
    Trainer(make_config("ci", total_frames=400, eval_every=10_000), tmp_path / "run", progress=True).run()
    assert bars and bars[0].mininterval >= 30 and bars[0].maxinterval > bars[0].mininterval
