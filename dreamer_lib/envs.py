"""Environments as Dreamer sees them: 64x64x3 uint8 frames, actions in [-1, 1], action repeat.

`make_env(name)` accepts
  - "pendulum" (the default): gymnasium's Pendulum-v1, rendered off-screen; no extra install;
  - "dmc_<domain>_<task>", e.g. dmc_walker_walk: DeepMind Control (pip install -e ".[dmc]");
  - any gymnasium id with continuous (Box) actions and an rgb_array renderer, e.g.
    MountainCarContinuous-v0 or CarRacing-v3 (pip install -e ".[box2d]").
Wrapper order, as the official code: pixels -> action repeat -> actions scaled from [-1, 1] ->
time limit counted in env frames.
"""
from __future__ import annotations

import os
import warnings

# pygame (behind gymnasium's classic-control renderers) installs SDL signal handlers that make a
# process ignore SIGTERM; these keep it killable and headless. MuJoCo needs a GL backend named.
os.environ.setdefault("SDL_NO_SIGNAL_HANDLERS", "1")
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

SUPPORTED = ("'pendulum' (default, no extra install); 'dmc_<domain>_<task>' such as dmc_walker_walk "
             "(pip install -e \".[dmc]\"); or a gymnasium id with continuous actions and an rgb_array "
             "renderer, such as MountainCarContinuous-v0 or CarRacing-v3 (pip install -e \".[box2d]\")")
RENAMED = {"CarRacing-v0": "CarRacing-v3", "CarRacing-v1": "CarRacing-v3", "CarRacing-v2": "CarRacing-v3"}


PENDULUM_CANVAS = 256  # pixels per side of the canvas Pendulum is drawn on before the resize (gymnasium: 500)


def resize(frame: np.ndarray, size: int) -> np.ndarray:
    if frame.shape[:2] == (size, size):
        # A copy where needed: MuJoCo hands its frames over flipped, with negative strides, which
        # torch cannot wrap when the actor reads the frame.
        return np.ascontiguousarray(frame)
    return np.array(Image.fromarray(frame).resize((size, size), Image.BILINEAR))


class DreamerEnv(gym.Env):
    """Wraps a gymnasium env: observations are the rendered frame, actions live in [-1, 1]^A,
    each agent step repeats the action `action_repeat` times and sums the rewards, and an episode
    is truncated after `time_limit` env frames."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, env: gym.Env, action_repeat: int, time_limit: int, size: int = 64):
        self.env, self.action_repeat, self.time_limit, self.size = env, action_repeat, time_limit, size
        low, high = env.action_space.low, env.action_space.high
        self._low, self._scale = low, (high - low) / 2
        self.action_space = gym.spaces.Box(-1.0, 1.0, low.shape, np.float32)
        self.observation_space = gym.spaces.Box(0, 255, (size, size, 3), np.uint8)
        self.render_mode = "rgb_array"
        self._frames = 0

    def _frame(self, observation) -> np.ndarray:
        if isinstance(observation, np.ndarray) and observation.ndim == 3 and observation.shape[-1] == 3:
            return resize(observation.astype(np.uint8), self.size)  # the env's own pixels (CarRacing)
        frame = self.env.render()
        if not (isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.shape[-1] == 3):
            what = "None" if frame is None else f"{type(frame).__name__} {getattr(frame, 'shape', '')}"
            raise ValueError(f"{self.env} rendered {what}, not an RGB frame (H, W, 3): Dreamer learns from pixels. "
                             "Create the env with render_mode='rgb_array' (make_env does) or choose an env "
                             "that can render.")
        return resize(frame, self.size)

    def get_rng_state(self) -> dict:
        """Everything random about the next episodes: the simulator's generator (start states) and
        the action space's (random prefill actions). Saved in checkpoints for an exact resume."""
        inner = self.env.unwrapped
        simulator = inner.random.get_state() if isinstance(inner, DMCEnv) else inner.np_random.bit_generator.state
        return {"simulator": simulator, "action_space": self.action_space.np_random.bit_generator.state}

    def set_rng_state(self, state: dict) -> None:
        inner = self.env.unwrapped
        if isinstance(inner, DMCEnv):
            inner.random.set_state(state["simulator"])
        else:
            inner.np_random.bit_generator.state = state["simulator"]
        self.action_space.np_random.bit_generator.state = state["action_space"]

    def reset(self, *, seed=None, options=None):
        observation, info = self.env.reset(seed=seed, options=options)
        self._frames = 0
        self._last = self._frame(observation)
        return self._last, info

    def step(self, action):
        action = np.clip(np.asarray(action, np.float32), -1, 1)
        env_action = self._low + (action + 1) * self._scale
        total, terminated, truncated, info = 0.0, False, False, {}
        for _ in range(self.action_repeat):
            observation, reward, terminated, truncated, info = self.env.step(env_action)
            total += float(reward)
            self._frames += 1
            if terminated or truncated:
                break
        truncated = truncated or self._frames >= self.time_limit
        self._last = self._frame(observation)
        return self._last, total, terminated, truncated, info

    def render(self):
        return self._last

    def close(self):
        self.env.close()


class DMCEnv(gym.Env):
    """A DeepMind Control task as a gymnasium env with rendered 64x64 observations (camera 0,
    camera 2 for quadruped, as the official code). DMC episodes never terminate, only time out."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, domain: str, task: str, size: int = 64, seed: int | None = None):
        from dm_control import suite

        self._env = suite.load(domain, task, task_kwargs={"random": seed})
        self._camera = 2 if domain == "quadruped" else 0
        self._size = size
        spec = self._env.action_spec()
        self.action_space = gym.spaces.Box(spec.minimum.astype(np.float32), spec.maximum.astype(np.float32))
        self.observation_space = gym.spaces.Box(0, 255, (size, size, 3), np.uint8)

    @property
    def random(self) -> np.random.RandomState:
        """The task's generator: it draws every episode's start state."""
        return self._env.task.random

    def render(self):
        return self._env.physics.render(self._size, self._size, camera_id=self._camera)

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            self.random.seed(seed)
        self._env.reset()
        return None, {}

    def step(self, action):
        step = self._env.step(action)
        return None, step.reward or 0.0, False, step.last(), {}


def make_env(name: str = "pendulum", action_repeat: int = 2, time_limit: int | None = None, size: int = 64,
             seed: int | None = None) -> DreamerEnv:
    """A pixel env for Dreamer. time_limit counts env frames (None: the env's own limit)."""
    if name in RENAMED:
        warnings.warn(f"{name} is no longer in gymnasium; using {RENAMED[name]}, its current version.")
        name = RENAMED[name]
    if name.startswith("dmc_"):
        parts = name.split("_")
        if len(parts) < 3:
            raise ValueError(f"DMC env names look like dmc_<domain>_<task>, e.g. dmc_walker_walk; got {name!r}.")
        domain = "ball_in_cup" if parts[1] == "cup" else parts[1]
        try:
            inner = DMCEnv(domain, "_".join(parts[2:]), size, seed)
        except ImportError:
            raise ValueError(f"{name} needs DeepMind Control: pip install -e \".[dmc]\" "
                             "(and MUJOCO_GL=egl or osmesa on a machine without a screen).") from None
        except Exception as error:
            raise ValueError(f"Could not load {name}: {error}. Supported envs: {SUPPORTED}.") from None
        limit = time_limit or 1000
    else:
        gym_id = "Pendulum-v1" if name == "pendulum" else name
        no_pixels = (f"{name} has no render_mode='rgb_array' renderer, but Dreamer needs one: the rendered "
                     "pixels are its observations. Choose an env that renders rgb_array frames. "
                     f"Supported: {SUPPORTED}.")
        try:
            inner = gym.make(gym_id, render_mode="rgb_array")
        except gym.error.Error as error:
            raise ValueError(f"Unknown environment {name!r} ({error}). Supported: {SUPPORTED}.") from None
        except ImportError as error:
            raise ValueError(f"{name} needs a package that is not installed ({error}). "
                             "For CarRacing: pip install -e \".[box2d]\".") from None
        except TypeError as error:  # a constructor without a render_mode argument: it cannot render
            if "render_mode" not in str(error):
                raise
            raise ValueError(no_pixels) from None
        if "rgb_array" not in inner.metadata.get("render_modes", ()):
            inner.close()
            raise ValueError(no_pixels)
        if not isinstance(inner.action_space, gym.spaces.Box):
            raise ValueError(
                f"{name} has {inner.action_space} actions, but this DreamerV1 has a tanh-Gaussian "
                f"actor for continuous actions (as the paper's control experiments). Supported: {SUPPORTED}.")
        limit = time_limit or (inner.spec.max_episode_steps if inner.spec and inner.spec.max_episode_steps else 1000)
        if gym_id == "Pendulum-v1":
            # gymnasium draws Pendulum on a 500 x 500 canvas, which we shrink to 64 x 64; drawn at 256,
            # the same picture costs a third of the time per step and the 64 x 64 frames differ by
            # 0.14 of 255 per pixel on average (docs/provenance.md).
            inner.unwrapped.screen_dim = PENDULUM_CANVAS
    env = DreamerEnv(inner, action_repeat, limit, size)
    if seed is not None:
        env.action_space.seed(seed)
        if not name.startswith("dmc_"):
            inner.reset(seed=seed)
    elif not name.startswith("dmc_"):
        inner.reset()  # creates the simulator's generator, so get_rng_state works before the first episode
    return env


def run_episode(env: gym.Env, policy=None, state=None, seed: int | None = None,
                should_stop=None) -> dict[str, np.ndarray] | None:
    """Play one episode and return it in the replay buffer's format (see buffer.py).

    policy(image, state) -> (action, state) acts; None plays uniformly random actions. `state` is
    the policy's state at the reset (a fresh one for every episode). seed: reseeds the env's
    start state. should_stop() is asked before every step; when it says yes the unfinished
    episode is dropped and None returned (a trainer stopping within a step)."""
    image, _ = env.reset(seed=seed)
    action_size = env.action_space.shape[0]
    steps = {"image": [image], "action": [np.zeros(action_size, np.float32)], "reward": [0.0], "not_terminal": [1.0]}
    done = False
    while not done:
        if should_stop is not None and should_stop():
            return None
        if policy is None:
            action = env.action_space.sample()
        else:
            action, state = policy(image, state)
        image, reward, terminated, truncated, _ = env.step(action)
        for key, value in zip(("image", "action", "reward", "not_terminal"), (image, action, reward, 0.0 if terminated else 1.0)):
            steps[key].append(value)
        done = terminated or truncated
    return {"image": np.stack(steps["image"]).astype(np.uint8), "action": np.stack(steps["action"]).astype(np.float32),
            "reward": np.asarray(steps["reward"], np.float32), "not_terminal": np.asarray(steps["not_terminal"], np.float32)}
