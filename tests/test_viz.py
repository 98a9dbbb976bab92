"""viz (the run folder's pictures), course.pictures (the lessons') and the debugger widget return
arrays and figures of the right shapes, without a screen."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from dreamer_lib import viz  # noqa: E402
from dreamer_lib.course import pictures  # noqa: E402
from dreamer_lib.agent import DreamerV1  # noqa: E402
from dreamer_lib.config import make_config  # noqa: E402

T, A = 12, 2


@pytest.fixture(scope="module")
def agent():
    torch.manual_seed(0)
    return DreamerV1(make_config("ci", device="cpu"), action_size=A)


def synthetic_episode(length=T, seed=0):
    rng = np.random.default_rng(seed)
    return {"image": rng.integers(0, 256, (length, 64, 64, 3), dtype=np.uint8),
            "action": np.concatenate([np.zeros((1, A)), rng.uniform(-1, 1, (length - 1, A))]).astype(np.float32),
            "reward": np.concatenate([[0.0], rng.normal(size=length - 1)]).astype(np.float32),
            "not_terminal": np.ones(length, np.float32)}


@pytest.fixture(scope="module")
def traces(agent):
    return pictures.debug_episode(agent, synthetic_episode(), start=3)


def test_debug_episode_shapes(agent, traces):
    h = agent.config.horizon
    for key in ("real", "posterior", "open_loop"):
        assert traces[key].shape == (T, 64, 64, 3) and traces[key].dtype == np.uint8, key
    assert traces["imagined"].shape == (h, 64, 64, 3) and traces["imagined"].dtype == np.uint8
    for key in ("reward", "reward_posterior", "reward_open_loop", "value", "kl", "error_posterior", "error_open_loop"):
        assert traces[key].shape == (T,) and np.isfinite(traces[key]).all(), key
    for key in ("imagined_reward", "imagined_value"):
        assert traces[key].shape == (h,), key
    assert traces["imagined_action"].shape == (h, A)
    assert np.abs(traces["imagined_action"]).max() <= 1
    assert traces["start"] == 3 and traces["horizon"] == h
    assert (traces["kl"] >= 0).all()


def test_debug_episode_policy_is_the_actor_at_each_posterior_state(agent, traces):
    """policy_std: the actor's pre-tanh std at the posterior states the debugger filtered (same
    seed, so the same sampled z); policy_mode: an action of the actor's at least as likely as
    tanh(mean) (the mode is the best of sampled draws, so its draws are not reproduced here)."""
    from dreamer_lib.evaluate import seeded
    from dreamer_lib.networks import preprocess

    episode = synthetic_episode()
    with torch.no_grad(), seeded(0, agent.device):
        images = torch.as_tensor(episode["image"])[:, None]
        posterior, _ = agent.rssm.rollout_observation(agent.encoder(preprocess(images)),
                                                      torch.as_tensor(episode["action"])[:, None],
                                                      agent.rssm.get_initial_state(1, agent.device))
        policy = agent.actor(posterior.features)
        std = policy.normal.scale[:, 0].numpy()
        squashed_mean = torch.tanh(policy.normal.mean).clamp(-0.999999, 0.999999)
        traced = torch.as_tensor(traces["policy_mode"])[:, None].clamp(-0.999999, 0.999999)
        assert (policy.log_prob(traced) >= policy.log_prob(squashed_mean) - 1e-3).all()
    assert traces["policy_mode"].shape == traces["policy_std"].shape == (T, A)
    np.testing.assert_allclose(traces["policy_std"], std, rtol=1e-5)
    assert np.abs(traces["policy_mode"]).max() <= 1 and (traces["policy_std"] > 0).all()


def test_debug_episode_open_loop_is_posterior_until_start(traces):
    assert np.array_equal(traces["open_loop"][:4], traces["posterior"][:4])


def test_debug_episode_is_seeded_and_leaves_global_rng(agent):
    state = torch.get_rng_state()
    a = pictures.debug_episode(agent, synthetic_episode(), start=5, horizon=3, seed=1)
    b = pictures.debug_episode(agent, synthetic_episode(), start=5, horizon=3, seed=1)
    assert torch.equal(state, torch.get_rng_state())
    assert all(np.array_equal(a[k], b[k]) for k in a if isinstance(a[k], np.ndarray))
    assert a["imagined"].shape == (3, 64, 64, 3)


def test_debug_episode_last_step_and_bad_start(agent):
    traces = pictures.debug_episode(agent, synthetic_episode(), start=T - 1)
    assert np.array_equal(traces["open_loop"], traces["posterior"])
    with pytest.raises(ValueError, match="outside the episode"):
        pictures.debug_episode(agent, synthetic_episode(), start=T)


@pytest.mark.parametrize("t", [0, 3, 5, T - 1])
def test_debugger_frame(traces, t):
    figure = pictures.debugger_frame(traces, t)
    assert isinstance(figure, plt.Figure) and len(figure.axes) == 7
    plt.close(figure)


def test_debugger_video(traces):
    video = pictures.debugger_video(traces, scale=2)
    assert video.dtype == np.uint8 and video.shape == (T, 14 + 128 + 14, 4 * 128 + 3 * 4, 3)
    assert pictures.debugger_video(traces, scale=1, every=3).shape[0] == len(range(0, T, 3))
    # the imagined panel is grey where nothing was imagined (t = 0) and filled inside the span
    x = 3 * (128 + 4)
    assert (video[0, 14:142, x:x + 128] == 200).all()
    assert not (video[4, 14:142, x:x + 128] == 200).all()


def test_imagination_strip():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 5, 64, 64, 3), dtype=np.uint8)
    rewards, values = rng.normal(size=(3, 5)), rng.normal(size=(3, 5))
    figure = pictures.imagination_strip(frames, rewards, values, starts=frames[:, 0])
    assert len(figure.axes) == 3 * 6
    plt.close(figure)
    figure = pictures.imagination_strip(torch.as_tensor(frames[0]), rewards[0], values[0], every=2)
    assert len(figure.axes) == 3
    plt.close(figure)
    with pytest.raises(ValueError, match="one number per frame"):
        pictures.imagination_strip(frames, rewards[:, :4], values)


def test_metrics_grid():
    rows = [{"updates": i, "image_loss": 10 - i, "kl": 3.0} for i in range(5)]
    figure = pictures.metrics_grid(rows, keys=("image_loss", "kl"), columns=2)
    assert len(figure.axes) == 2
    plt.close(figure)
    figure = pictures.metrics_grid({"a": rows, "b": rows}, keys=("image_loss", "kl", "kl"), columns=2)
    assert len(figure.axes) == 4  # one spare axis, switched off
    plt.close(figure)


def test_existing_helpers_shapes():
    frames = np.zeros((6, 64, 64, 3), np.uint8)
    assert viz.filmstrip(frames, columns=4).shape == (128, 256, 3)
    assert viz.openl_frames(frames[:, None], frames[:, None]).shape == (6, 192, 64, 3)
    html = pictures.animation_html(frames, scale=1)
    assert "data:image/gif;base64," in html and "<script" not in html


def test_imagination_debugger_widget(agent):
    widgets = pytest.importorskip("ipywidgets")
    from dreamer_lib.course.widgets import imagination_debugger

    episodes = [synthetic_episode(), synthetic_episode(length=8, seed=1)]
    box = imagination_debugger(agent, episodes, start=2)
    assert isinstance(box, widgets.VBox)
    (episode, start), (play, time) = box.children[0].children, box.children[1].children
    assert time.max == T - 1
    episode.value = 1
    assert time.max == 7 and start.max == 7 and play.max == 7
    time.value = 4  # redraws from the cache without error
    with pytest.raises(ValueError, match="No episodes"):
        imagination_debugger(agent, [])
