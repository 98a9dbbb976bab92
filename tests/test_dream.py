"""Driving the dream (course/dream.py, lesson 7): the dream is the prior rolled out by hand from a
real posterior state, the real side is the simulator replayed by hand, and nothing touches the
global random state. A tiny ci agent (untrained: only the plumbing is tested) and the real pendulum."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from dreamer_lib.agent import DreamerV1  # noqa: E402
from dreamer_lib.config import make_config  # noqa: E402
from dreamer_lib.course.dream import Dream, drive, dream_strip  # noqa: E402
from dreamer_lib.envs import make_env  # noqa: E402
from dreamer_lib.networks import preprocess, to_uint8  # noqa: E402

CONTEXT = 3
ACTIONS = np.array([[1.0], [1.0], [-0.5], [0.0], [2.0]], np.float32)  # 2.0: clipped to 1 in both worlds
CONTEXT_ACTIONS = np.array([[0.3], [-0.7]], np.float32)


@pytest.fixture(scope="module")
def agent():
    torch.manual_seed(0)
    return DreamerV1(make_config("ci", device="cpu"), action_size=1)


@pytest.fixture
def env():
    env = make_env("pendulum", seed=0)
    yield env
    env.close()


def by_hand(agent, env, seed, context_actions, actions):
    """The drive written out: real frames by stepping the env, dreamed frames by filtering the
    context with obs_step and rolling the prior, with the same seeded noise."""
    real, rewards = [], []
    frame, _ = env.reset(seed=seed)
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(seed)
        state = agent.rssm.get_initial_state(1)
        embed = lambda f: agent.encoder(preprocess(torch.as_tensor(f)[None]))  # noqa: E731
        state, _ = agent.rssm.obs_step(state, torch.zeros(1, 1), embed(frame))
        for a in context_actions:
            frame, *_ = env.step(a)
            state, _ = agent.rssm.obs_step(state, torch.as_tensor(a)[None], embed(frame))
        dream, predicted, values = [], [], []
        for a in np.clip(actions, -1, 1):
            frame, reward, *_ = env.step(a)
            real.append(frame)
            rewards.append(reward)
            state = agent.rssm.prior(state, torch.as_tensor(a)[None])
            dream.append(to_uint8(agent.decoder(state.features))[0].numpy())
            predicted.append(agent.reward(state.features)[0].item())
            values.append(agent.critic(state.features)[0].item())
    return {"real": np.stack(real), "real_reward": np.array(rewards, np.float32), "dream": np.stack(dream),
            "reward_head": np.array(predicted, np.float32), "critic": np.array(values, np.float32)}


@pytest.fixture
def history(agent, env):
    return drive(agent, env, ACTIONS, seed=3, context=CONTEXT, context_actions=CONTEXT_ACTIONS)


def test_history_shapes_and_dtypes(history):
    T = len(ACTIONS)
    for key in ("real", "dream", "error_frame"):
        assert history[key].shape == (T, 64, 64, 3) and history[key].dtype == np.uint8, key
    for key in ("real_reward", "predicted_reward", "value", "error"):
        assert history[key].shape == (T,) and history[key].dtype == np.float32, key
        assert np.isfinite(history[key]).all(), key
    assert history["action"].shape == (T, 1) and np.abs(history["action"]).max() <= 1
    assert history["done"].shape == (T,) and not history["done"].any()
    assert list(history["step"]) == [1, 2, 3, 4, 5]
    assert history["start_real"].shape == history["start_dream"].shape == (64, 64, 3)
    assert history["seed"] == 3 and history["context"] == CONTEXT
    diff = history["dream"].astype(int) - history["real"].astype(int)
    assert np.array_equal(history["error_frame"], np.abs(diff))
    assert np.allclose(history["error"], ((diff / 255) ** 2).mean((1, 2, 3)), atol=1e-6)


def test_real_frames_are_the_simulator_replayed_by_hand(agent, env, history):
    expected = by_hand(agent, env, 3, CONTEXT_ACTIONS, ACTIONS)
    assert np.array_equal(history["real"], expected["real"])
    assert np.allclose(history["real_reward"], expected["real_reward"])


def test_dream_is_the_prior_rolled_out_by_hand_from_the_posterior_start(agent, env, history):
    expected = by_hand(agent, env, 3, CONTEXT_ACTIONS, ACTIONS)
    assert np.array_equal(history["dream"], expected["dream"])


def test_predictions_are_divided_by_reward_scale(agent, env, history):
    scale = agent.config.reward_scale
    assert scale != 1  # the ci preset's 0.1, so the test can tell
    expected = by_hand(agent, env, 3, CONTEXT_ACTIONS, ACTIONS)
    assert np.allclose(history["predicted_reward"], expected["reward_head"] / scale, rtol=1e-5, atol=1e-6)
    assert np.allclose(history["value"], expected["critic"] / scale, rtol=1e-5, atol=1e-6)


def test_seeded_reproducible_and_leaves_the_global_rng(agent, env, history):
    before = torch.get_rng_state()
    again = drive(agent, env, ACTIONS, seed=3, context=CONTEXT, context_actions=CONTEXT_ACTIONS)
    assert torch.equal(torch.get_rng_state(), before)
    for key in ("real", "dream", "predicted_reward", "value"):
        assert np.array_equal(history[key], again[key]), key
    other = drive(agent, env, ACTIONS, seed=4, context=CONTEXT, context_actions=CONTEXT_ACTIONS)
    assert not np.array_equal(history["dream"], other["dream"])


def test_reset_starts_over(agent, env, history):
    dream = Dream(agent, env, seed=3, context=CONTEXT, context_actions=CONTEXT_ACTIONS)
    dream.step([0.9])
    dream.reset(context_actions=CONTEXT_ACTIONS)  # same seed and context
    assert len(dream.history()["step"]) == 0
    for action in ACTIONS:
        dream.step(action)
    assert np.array_equal(dream.history()["dream"], history["dream"])
    assert np.array_equal(dream.history(last=2)["dream"], history["dream"][-2:])


def test_stepping_after_the_real_episode_ended_is_flagged(agent):
    env = make_env("pendulum", time_limit=12, seed=0)  # 6 agent steps (action repeat 2)
    dream = Dream(agent, env, seed=0, context=CONTEXT)  # the context plays 2 of them
    for _ in range(7):
        dream.step([0.5])
    history = dream.history()
    env.close()
    assert list(history["done"]) == [False, False, False, True, True, True, True]
    assert np.isfinite(history["real_reward"][:4]).all() and np.isnan(history["real_reward"][4:]).all()
    assert np.isnan(history["error"][4:]).all() and not history["error_frame"][4:].any()
    assert all(np.array_equal(frame, history["real"][3]) for frame in history["real"][4:])
    assert np.isfinite(history["predicted_reward"]).all()  # the dream goes on
    figure = dream_strip(history)
    plt.close(figure)


def test_bad_actions_are_explained(agent, env):
    with pytest.raises(ValueError, match="1 action number"):
        Dream(agent, env, context=1).step([0.1, 0.2])
    with pytest.raises(ValueError, match="shape"):
        drive(agent, env, np.zeros((3, 2)), context=1)
    with pytest.raises(ValueError, match="context"):
        Dream(agent, env, context=0)


@pytest.mark.parametrize("every, columns", [(1, 6), (2, 4), (4, 3)])
def test_dream_strip_has_a_column_per_shown_step(history, every, columns):
    figure = dream_strip(history, every=every)
    assert isinstance(figure, plt.Figure)
    assert len(figure.axes) == 3 * columns  # the start, then steps 0, every, ..., and always the last
    sizes = [t.get_fontsize() for ax in figure.axes for t in (ax.title, ax.xaxis.label, ax.yaxis.label)
             if t.get_text()]
    assert sizes and min(sizes) >= 9
    labels = [figure.axes[row * columns].get_ylabel() for row in range(3)]
    assert labels[0] == "real" and labels[1].startswith("dream") and labels[2].startswith("|dream - real|"), labels
    assert figure.axes[2 * columns].axison  # the error row's label shows though its first panel is empty
    plt.close(figure)


def test_drive_the_dream_widget_steps(agent, env):
    widgets = pytest.importorskip("ipywidgets")
    from dreamer_lib.course.widgets import drive_the_dream

    box = drive_the_dream(agent, env, seed=1, context=2, window=3)
    assert isinstance(box, widgets.VBox)
    buttons = {child.description: child for child in box.children[1].children if isinstance(child, widgets.Button)}
    (slider,) = box.children[0].children
    slider.value = -0.4
    buttons["step"].click()
    history = box.dream.history()
    assert len(history["step"]) == 1 and np.allclose(history["action"], [[-0.4]])
    box.children[1].children[2].value = 3  # N
    buttons["play N steps"].click()
    assert len(box.dream.history()["step"]) == 4
    buttons["reset"].click()
    assert len(box.dream.history()["step"]) == 0
    plt.close("all")
