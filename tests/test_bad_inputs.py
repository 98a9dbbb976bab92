"""Every bad input gets a ValueError that names the setting or file, what is wrong and the fix:
settings (Config.validate), a run's config.json (Config.from_json), envs that cannot render, and
episode files that the agent cannot train on (ReplayBuffer.load)."""
from __future__ import annotations

import json
import math
import re

import gymnasium as gym
import numpy as np
import pytest

from dreamer_lib.buffer import ReplayBuffer, validate_episode
from dreamer_lib.config import Config, make_config
from dreamer_lib.envs import make_env


# ---------------------------------------------------------------------------- Config.validate
@pytest.mark.parametrize("name, value, flag", [
    ("model_lr", math.inf, "--model-lr"), ("free_nats", math.nan, "--free-nats"),
    ("expl_noise", math.nan, "--expl-noise"), ("kl_scale", math.inf, "--kl-scale"),
    ("grad_clip", math.inf, "--grad-clip"), ("actor_entropy", math.nan, "--actor-entropy"),
])
def test_a_float_setting_must_be_finite(name, value, flag):
    with pytest.raises(ValueError, match=rf"{name} is {value}; it must be a finite number\. Change them with {flag}"):
        make_config("ci", **{name: value}).validate()
    make_config("ci", **{name: 1}).validate()  # an int is a fine float


@pytest.mark.parametrize("name, value, flag", [
    ("cnn_depth", 10**9, "--cnn-depth"), ("deter_size", 10**9, "--deter-size"), ("stoch_size", 10**9, "--stoch-size"),
    ("hidden_size", 10**9, "--hidden-size"), ("dense_units", 10**9, "--dense-units"), ("horizon", 10**9, "--horizon"),
])
def test_an_absurd_size_is_refused_before_anything_is_allocated(name, value, flag):
    with pytest.raises(ValueError, match=rf"{name} is 1,000,000,000, above its limit of [\d,]+: .*(weights|states)"
                                         rf".*typos.*Change them with {flag}"):
        make_config("paper", **{name: value}).validate()
    # far larger than the paper, and still allowed
    make_config("paper", cnn_depth=128, deter_size=4096, stoch_size=256, hidden_size=2048, dense_units=2048,
                batch_size=256, seq_len=200, horizon=100).validate()


@pytest.mark.parametrize("batch_size, seq_len, flag", [(10**9, 50, "--batch-size"), (50, 10**9, "--seq-len"),
                                                       (2000, 2000, "--batch-size")])
def test_an_absurd_batch_is_refused_by_its_frames_per_update(batch_size, seq_len, flag):
    frames = f"{batch_size * seq_len:,}"
    with pytest.raises(ValueError, match=rf"batch_size x seq_len is {frames} frames per update, above the limit of "
                                         rf"1,000,000 .* GB .*Change them with {flag} "):
        make_config("paper", batch_size=batch_size, seq_len=seq_len).validate()


def test_no_prefill_is_refused_because_the_first_update_needs_an_episode():
    with pytest.raises(ValueError, match=r"prefill_frames is 0; it must be 1 or more, so that at least one episode "
                                         r"is collected before the first update.*--prefill-frames"):
        make_config("ci", prefill_frames=0).validate()


def test_a_negative_seed_is_refused():
    with pytest.raises(ValueError, match=r"seed is -1; it must be 0 or more\. Change them with --seed"):
        make_config("ci", seed=-1).validate()


@pytest.mark.parametrize("name, value, expected", [
    ("cnn_depth", "abc", r"cnn_depth is 'abc' \(str\); expected int"),
    ("batch_size", True, r"batch_size is True \(bool\); expected int"),
    ("total_frames", 1e6, r"total_frames is 1000000\.0 \(float\); expected int"),
    ("env", None, r"env is None \(NoneType\); expected str"),
    ("time_limit", 2.5, r"time_limit is 2\.5 \(float\); expected int or None"),
    ("predict_continue", 1, r"predict_continue is 1 \(int\); expected bool"),
    ("device", "tpu", r"device is 'tpu' \(str\); expected one of 'auto', 'cpu', 'cuda'"),
])
def test_a_value_of_the_wrong_type_is_named_with_the_expected_type(name, value, expected):
    with pytest.raises(ValueError, match=expected):
        Config(**{name: value}).validate()


# ---------------------------------------------------------------------------- Config.from_json
@pytest.fixture
def config_file(tmp_path):
    return tmp_path / "run" / "config.json"


def saved(**changes) -> str:
    data = json.loads(make_config("ci").to_json())
    data.update(changes)
    return json.dumps({k: v for k, v in data.items() if v != "<missing>"})


@pytest.mark.parametrize("text, message", [
    ("", r"is not valid JSON \(Expecting value: line 1 column 1"),
    ('{"env": "pendulum",', r"is not valid JSON"),
    ("[1, 2]", r"holds a JSON list, not an object of settings"),
    ('"pendulum"', r"holds a JSON str, not an object of settings"),
])
def test_a_config_file_that_is_no_json_object_is_named(config_file, text, message):
    with pytest.raises(ValueError, match=message) as info:
        Config.from_json(text, source=config_file)
    assert str(config_file) in str(info.value) and "another --logdir" in str(info.value)


@pytest.mark.parametrize("changes, problem", [
    ({"cnn_depth": "abc"}, r"cnn_depth is 'abc' \(str\); expected int"),
    ({"total_frames": None}, r"total_frames is None \(NoneType\); expected int"),
    ({"device": "tpu"}, r"device is 'tpu' \(str\); expected one of 'auto', 'cpu', 'cuda'"),
    ({"free_nats": math.nan}, r"free_nats is nan; it must be a finite number"),
    ({"batch_size": 0}, r"batch_size is 0; it counts something, so it must be 1 or more"),
])
def test_invalid_settings_in_a_config_file_name_the_file(config_file, changes, problem):
    with pytest.raises(ValueError, match=rf"Invalid settings in {config_file}: {problem}\. Correct them in "
                                         rf"{config_file}"):
        Config.from_json(saved(**changes), source=config_file)


def test_a_config_file_that_lacks_a_setting_is_refused(config_file):
    # It would otherwise train the paper's 1,000,000 frames instead of the run's own 800.
    with pytest.raises(ValueError, match=rf"{config_file} lacks the settings \['seq_len', 'total_frames'\]: .*"
                                         "Add them to the file"):
        Config.from_json(saved(total_frames="<missing>", seq_len="<missing>"), source=config_file)


@pytest.mark.parametrize("decay", [1.0, -0.1, 2.0])
def test_a_slow_critic_decay_outside_0_1_is_refused(decay):
    with pytest.raises(ValueError, match=rf"slow_critic_decay is {decay}; it must lie in \[0, 1\).*--slow-critic-decay"):
        make_config("ci", slow_critic_decay=decay).validate()
    make_config("ci", slow_critic_decay=0.0).validate()  # off, the paper


@pytest.mark.parametrize("alpha", [0.0, 1.0, 1.5])
def test_a_kl_balance_outside_0_1_is_refused(alpha):
    with pytest.raises(ValueError, match=rf"kl_balance is {alpha}; it must lie in \(0, 1\).*--kl-balance"):
        make_config("ci", kl_balance=alpha).validate()
    make_config("ci", kl_balance=None).validate()  # off, the paper


def test_a_config_file_with_unknown_settings_names_the_file(config_file):
    with pytest.raises(ValueError, match=rf"{config_file} has settings .* does not know: \['learning_rate'\]"):
        Config.from_json(saved(learning_rate=0.1), source=config_file)


def test_a_config_file_written_before_the_renames_still_loads(config_file):
    data = json.loads(make_config("ci", total_frames=1200, train_updates=3, predict_continue=True).to_json())
    for old, new in (("steps", "total_frames"), ("train_steps", "train_updates"), ("use_continue", "predict_continue")):
        data[old] = data.pop(new)
    for added in ("actor_entropy", "slow_critic_decay", "return_normalization", "kl_balance", "imagine_every",
                  "latent_classes", "free_nats_per_state"):
        data.pop(added)  # added later: the first versions trained without them
    data.update(image_size=64, checkpoint_every=10_000)  # retired, never read
    config = Config.from_json(json.dumps(data), source=config_file)
    assert config == make_config("ci", total_frames=1200, train_updates=3, predict_continue=True, actor_entropy=0.0)


# ---------------------------------------------------------------------------- envs
class NoPixels(gym.Env):
    """Continuous actions, but nothing to render."""

    metadata = {"render_modes": []}

    def __init__(self, render_mode=None):
        self.render_mode = render_mode
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        return np.zeros(2, np.float32), 0.0, False, False, {}


class NoRenderArgument(NoPixels):
    """An env written for gym before 0.26: no render modes declared, no render_mode argument."""

    metadata = {}

    def __init__(self):
        super().__init__()


@pytest.mark.parametrize("entry_point", [NoPixels, NoRenderArgument])
def test_an_env_that_cannot_render_rgb_array_is_named(entry_point):
    env_id = f"BadInputs{entry_point.__name__}-v0"
    gym.register(env_id, entry_point=entry_point, max_episode_steps=10)
    try:
        with pytest.raises(ValueError, match=rf"{env_id} has no render_mode='rgb_array' renderer, but Dreamer "
                                             r"needs one: the rendered pixels are its observations\. Choose"):
            make_env(env_id)
    finally:
        del gym.registry[env_id]


# ---------------------------------------------------------------------------- episode files
def good_episode(rows: int = 10, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    not_terminal = np.ones(rows, np.float32)
    not_terminal[-1] = 0.0
    return {"image": rng.integers(0, 256, (rows, 64, 64, 3), dtype=np.uint8),
            "action": rng.uniform(-1, 1, (rows, 2)).astype(np.float32),
            "reward": rng.normal(size=rows).astype(np.float32), "not_terminal": not_terminal}


def with_value(key: str, row: int, value) -> dict[str, np.ndarray]:
    episode = good_episode()
    episode[key] = episode[key].copy()
    episode[key][row] = value
    return episode


BAD_EPISODES = {
    "nan reward": (with_value("reward", 3, np.nan), r"episode\['reward'\] holds NaN or inf \(first in row 3\)"),
    "inf reward": (with_value("reward", 5, np.inf), r"episode\['reward'\] holds NaN or inf \(first in row 5\)"),
    "nan action": (with_value("action", 2, np.nan), r"episode\['action'\] holds NaN or inf \(first in row 2\)"),
    "action 1.5": (with_value("action", 4, 1.5), r"episode\['action'\] has values outside \[-1, 1\] \(up to 1\.5\)"),
    "not_terminal 0.99": (with_value("not_terminal", 1, 0.99),
                          r"episode\['not_terminal'\] must be 1, or 0 where o_t is terminal; it also holds 0\.99\."),
    "32x32 frames": ({**good_episode(), "image": np.zeros((10, 32, 32, 3), np.uint8)},
                     r"episode\['image'\] must be uint8 frames \(L\+1, 64, 64, 3\).*got uint8 \(10, 32, 32, 3\)"),
    "int rewards": ({**good_episode(), "reward": np.arange(10)}, r"episode\['reward'\] must be floats \(L\+1,\)"),
}


@pytest.mark.parametrize("name", BAD_EPISODES)
def test_validate_episode_refuses_what_the_agent_cannot_train_on(name):
    episode, message = BAD_EPISODES[name]
    with pytest.raises(ValueError, match=message):
        validate_episode(episode, for_agent=True)


def test_episode_files_the_agent_cannot_train_on_are_skipped_and_named(tmp_path):
    directory = tmp_path / "episodes"
    directory.mkdir()
    names = {}
    for index, name in enumerate(["good"] + list(BAD_EPISODES) + ["good too"]):
        episode = good_episode(seed=index) if name.startswith("good") else BAD_EPISODES[name][0]
        names[name] = f"{index:06d}-9.npz"
        np.savez_compressed(directory / names[name], **episode)
    buffer = ReplayBuffer(directory)
    with pytest.warns(UserWarning) as record:
        assert buffer.load() == 2
    messages = [str(w.message) for w in record]
    for name, (_, problem) in BAD_EPISODES.items():
        pattern = rf"Skipping episode file {directory / names[name]}: {problem}.* The agent cannot train on it; move " \
                  rf"it out of {directory}"
        assert sum(bool(re.search(pattern, m)) for m in messages) == 1, name
    assert len(messages) == len(BAD_EPISODES)
    assert buffer.total_episodes == 2 and buffer.agent_steps == 18


def test_an_episode_file_from_before_the_rename_of_not_terminal_loads(tmp_path):
    directory = tmp_path / "episodes"
    directory.mkdir()
    episode = good_episode()
    np.savez_compressed(directory / "000000-9.npz", image=episode["image"], action=episode["action"],
                        reward=episode["reward"], discount=episode["not_terminal"])
    buffer = ReplayBuffer(directory)
    assert buffer.load() == 1
    np.testing.assert_array_equal(buffer.episodes[0]["not_terminal"], episode["not_terminal"])


def test_a_resume_counts_loaded_episodes_not_file_numbers(tmp_path):
    """A checkpoint that counted 4 episodes, from files 0, 2, 3, 4 (file 1 was skipped): a resume
    must load those 4 and delete only file 5, written after the checkpoint."""
    directory = tmp_path / "episodes"
    directory.mkdir()
    for index in range(6):
        episode = BAD_EPISODES["nan reward"][0] if index == 1 else good_episode(seed=index)
        np.savez_compressed(directory / f"{index:06d}-9.npz", **episode)
    buffer = ReplayBuffer(directory)
    with pytest.warns(UserWarning, match="000001-9.npz"):
        assert buffer.load(episodes=4) == 4
    assert sorted(p.name[:6] for p in directory.glob("*.npz")) == ["000000", "000001", "000002", "000003", "000004"]
    expected = [good_episode(seed=i)["reward"] for i in (0, 2, 3, 4)]
    for loaded, reward in zip(buffer.episodes, expected, strict=True):
        np.testing.assert_array_equal(loaded["reward"], reward)
