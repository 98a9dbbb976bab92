"""Drive the dream: steer the learned world model with your own actions, beside the real simulator.

The imagination debugger (pictures.debug_episode) replays actions someone else chose. Here the
learner chooses them. A `Dream` first watches a few real frames, filtering them with the
posterior, so that its latent state describes the simulator's actual state. From then on every
action goes to both worlds: the world model advances with the prior alone (no more observations,
exactly as the actor imagines during training) and the real env takes the same action. Decoding
the prior state shows what the model "sees"; the real frame beside it shows where the dream
departs from reality, and how far ahead the model can be trusted.

Everything here returns numpy arrays or a matplotlib Figure, so it is tested without a screen;
`widgets.drive_the_dream` is a thin ipywidgets layer over it.

    from dreamer_lib.course.dream import drive, dream_strip
    history = drive(agent, env, actions=[[1.0]] * 10 + [[-1.0]] * 10, seed=0)
    dream_strip(history, every=2)

Units: the reward head learned rewards multiplied by config.reward_scale, and the critic learned
returns of those scaled rewards, so both predictions are divided by reward_scale here to read in
the env's reward units, next to the real reward.
"""
from __future__ import annotations

import contextlib

import matplotlib.pyplot as plt
import numpy as np
import torch

from dreamer_lib.networks import to_uint8

FONT = 9  # points: the smallest text in the strip

_PER_STEP = {  # what `history()` stacks: key -> (dtype, shape of one step)
    "step": (np.int64, ()), "real": (np.uint8, (64, 64, 3)), "dream": (np.uint8, (64, 64, 3)),
    "error_frame": (np.uint8, (64, 64, 3)), "real_reward": (np.float32, ()),
    "predicted_reward": (np.float32, ()), "value": (np.float32, ()), "error": (np.float32, ()),
    "done": (bool, ()),
}


class Dream:
    """The world model and the real env, driven side by side by the same actions.

    agent: a DreamerV1 (e.g. from `evaluate.load_agent(run)`); env: its DreamerEnv (actions in
    [-1, 1]^A). seed: resets the env's start state and seeds the model's sampling noise, so the
    same seed gives the same dream; the noise is this object's own stream and never draws from
    (or moves) torch's global random state. context: how many real frames the posterior sees
    before the dream takes over, the reset frame included (as agent.open_loop and the official
    code's open-loop summary), so the env plays context - 1 real steps with `context_actions`
    ((context - 1, A), default zeros) before the first `step`.

    After the real episode ends (terminated or truncated) the dream goes on but the env is no
    longer stepped: those steps repeat the last real frame, carry NaN for the real reward and the
    error, and are flagged `done`."""

    def __init__(self, agent, env, seed: int = 0, context: int = 5, context_actions=None):
        self.agent, self.env = agent, env
        self.seed, self.context = int(seed), int(context)
        self.action_size = int(env.action_space.shape[0])
        if self.action_size != agent.action_size:
            raise ValueError(f"The env takes {self.action_size} action numbers but the agent was built for "
                             f"{agent.action_size}: use the env that came with the agent (load_agent returns both).")
        self.reset(seed, context, context_actions)

    # ------------------------------------------------------------------ the model's own random stream
    @contextlib.contextmanager
    def _own_rng(self, seed: int | None = None):
        """no_grad, with this dream's random stream in place of torch's global one (seeded anew when
        `seed` is given); the global stream is restored on the way out, untouched."""
        device = self.agent.device
        cuda = device.type == "cuda"
        with torch.no_grad(), torch.random.fork_rng(devices=[device] if cuda else []):
            if seed is None:
                torch.set_rng_state(self._rng["cpu"])
                if cuda:
                    torch.cuda.set_rng_state(self._rng["cuda"], device)
            else:
                torch.random.default_generator.manual_seed(seed)
                if cuda:
                    with torch.cuda.device(device):
                        torch.cuda.manual_seed(seed)
            yield
            self._rng = {"cpu": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state(device) if cuda else None}

    # ------------------------------------------------------------------ starting over
    def reset(self, seed: int | None = None, context: int | None = None, context_actions=None) -> None:
        """Start over: reset the env with `seed` (default: the last one), play the context frames and
        filter them with the posterior. The history is cleared."""
        self.seed = self.seed if seed is None else int(seed)
        self.context = self.context if context is None else int(context)
        if self.context < 1:
            raise ValueError(f"context={self.context}: the posterior must see at least the reset frame (context >= 1).")
        if context_actions is None:
            context_actions = np.zeros((self.context - 1, self.action_size), np.float32)
        context_actions = [self._action(a) for a in _as_actions(context_actions, self.action_size)]
        if len(context_actions) != self.context - 1:
            raise ValueError(f"context={self.context} frames need {self.context - 1} context actions (the reset frame "
                             f"has none); got {len(context_actions)}.")
        agent = self.agent
        frame, _ = self.env.reset(seed=self.seed)
        with self._own_rng(seed=self.seed):
            state = agent.rssm.get_initial_state(1, agent.device)  # (1, ...)
            state = self._observe(state, np.zeros(self.action_size, np.float32), frame)
            for t, action in enumerate(context_actions, 1):
                frame, _, terminated, truncated, _ = self.env.step(action)
                if terminated or truncated:
                    raise ValueError(f"The real episode ended during the context (at step {t}): use a shorter context.")
                state = self._observe(state, action, frame)
            self.state = state  # the posterior at the last real frame: where the dream starts
            start_dream = to_uint8(agent.decoder(state.features))[0].cpu().numpy()  # (64, 64, 3)
        self.start = {"real": frame, "dream": start_dream}
        self.done = False  # has the real episode ended?
        self._last_real = frame
        self._records: list[dict] = []

    def _observe(self, state, action: np.ndarray, frame: np.ndarray):
        """One posterior step: h_t from (state, a_{t-1}), then z_t from h_t and the frame o_t."""
        prev_action = torch.as_tensor(action, device=self.agent.device)[None]  # (1, A)
        return self.agent.observe(state, prev_action, frame[None])  # (1, ...)

    def _action(self, action) -> np.ndarray:
        action = np.asarray(action, np.float32).reshape(-1)
        if action.shape != (self.action_size,):
            raise ValueError(f"This env takes {self.action_size} action number(s) per step (one per actuator, each "
                             f"in [-1, 1]); got {action.size}.")
        return np.clip(action, -1, 1)  # as DreamerEnv.step does, so both worlds get the same action

    # ------------------------------------------------------------------ one step in both worlds
    def step(self, action) -> dict:
        """Take `action` (A numbers in [-1, 1]) in the dream (prior only) and in the real env.
        Returns this step's record (the keys of `history()`, one step each)."""
        action = self._action(action)
        agent, scale = self.agent, self.agent.config.reward_scale
        with self._own_rng():
            state = agent.rssm.prior(self.state, torch.as_tensor(action, device=agent.device)[None])  # (1, ...)
            features = state.features  # (1, stoch + deter)
            dream = to_uint8(agent.decoder(features))[0].cpu().numpy()  # (64, 64, 3) uint8
            predicted_reward = agent.reward(features)[0].item() / scale  # env units (the head learned r x scale)
            value = agent.critic(features)[0].item() / scale  # env units, as the predicted reward
        self.state = state
        if self.done:  # the simulator's episode is over: the dream goes on alone
            real, real_reward, error = self._last_real, float("nan"), float("nan")
            error_frame = np.zeros_like(dream)
        else:
            real, real_reward, terminated, truncated, _ = self.env.step(action)
            self.done = bool(terminated or truncated)
            self._last_real = real
            diff = dream.astype(np.int16) - real.astype(np.int16)  # (64, 64, 3)
            error_frame = np.abs(diff).astype(np.uint8)
            error = float(((diff / 255.0) ** 2).mean())  # mean squared error, pixels in [0, 1]
        record = {"step": len(self._records) + 1, "action": action, "real": real, "dream": dream,
                  "error_frame": error_frame, "real_reward": real_reward, "predicted_reward": predicted_reward,
                  "value": value, "error": error, "done": self.done}
        self._records.append(record)
        return record

    def history(self, last: int | None = None) -> dict:
        """The steps so far (the `last` ones only, if given), stacked:
          step (T,) int: steps since the dream started (1 = the first imagined frame);
          action (T, A) float32;
          real, dream, error_frame (T, 64, 64, 3) uint8: the simulator's frame, the decoded prior
            state, and |dream - real| per pixel;
          real_reward, predicted_reward, value (T,) float32: the env's reward, the reward head's and
            the critic's predictions, both divided by config.reward_scale (env units);
          error (T,) float32: mean squared pixel error of dream vs real (pixels in [0, 1]);
          done (T,) bool: the real episode has ended (at this step or before). Steps after its end
            repeat the last real frame and carry NaN for real_reward and error.
        and start_real, start_dream (64, 64, 3) uint8: the last real frame the posterior saw and its
        reconstruction; seed, context (ints)."""
        records = self._records[-last:] if last else self._records
        out = {key: np.array([r[key] for r in records], dtype).reshape(len(records), *shape)
               for key, (dtype, shape) in _PER_STEP.items()}
        out["action"] = np.array([r["action"] for r in records], np.float32).reshape(len(records), self.action_size)
        out.update(start_real=self.start["real"], start_dream=self.start["dream"], seed=self.seed, context=self.context)
        return out


def _as_actions(actions, action_size: int) -> np.ndarray:
    """A sequence of actions as (T, A) float32; (T,) is accepted for a one-dimensional action."""
    actions = np.asarray(actions, np.float32)
    if actions.size == 0:
        return np.zeros((0, action_size), np.float32)
    if actions.ndim == 1 and action_size == 1:
        actions = actions[:, None]
    if actions.ndim != 2 or actions.shape[1] != action_size:
        raise ValueError(f"Expected a sequence of actions of shape (T, {action_size}) (one row per step, each number "
                         f"in [-1, 1]); got shape {actions.shape}.")
    return actions


def drive(agent, env, actions, seed: int = 0, context: int = 5, context_actions=None) -> dict:
    """A scripted drive: the `actions` (T, A) (or (T,) for a one-dimensional action) in the dream
    and the real env from the same start; returns `Dream.history()`. What a notebook shows as a
    still, where no kernel can drive the widget."""
    dream = Dream(agent, env, seed, context, context_actions)
    for action in _as_actions(actions, dream.action_size):
        dream.step(action)
    return dream.history()


def dream_strip(history: dict, every: int = 1, title: str | None = None) -> plt.Figure:
    """The drive as a still: three rows (real frame, dreamed frame, |dream - real|) and one column
    per shown step, after a first column with the last real frame the posterior saw. Under each
    column: the real and the predicted reward, the critic's value and the pixel error.

    history: from `drive` or `Dream.history`; every: show every `every`-th step (the last one is
    always shown). Steps after the real episode ended show its last frame faded."""
    steps = list(range(0, len(history["step"]), every))
    if steps and steps[-1] != len(history["step"]) - 1:
        steps.append(len(history["step"]) - 1)
    columns = 1 + len(steps)
    fig, axes = plt.subplots(3, columns, figsize=(1.35 * columns + 0.6, 5.3), squeeze=False)
    labels = ("real", "dream (prior)", "|dream - real|\n(pixels, 0-255)")
    for row, label in enumerate(labels):
        axes[row][0].set_ylabel(label, fontsize=FONT)
    axes[0][0].imshow(history["start_real"])
    axes[1][0].imshow(history["start_dream"])
    axes[2][0].set_frame_on(False)  # no error at the start; the row keeps its label
    axes[0][0].set_title("start (seen)", fontsize=FONT)
    axes[1][0].set_xlabel("posterior", fontsize=FONT)
    for column, k in enumerate(steps, 1):
        stale = np.isnan(history["real_reward"][k])  # the env was not stepped: its episode was over
        real = history["real"][k]
        axes[0][column].imshow((real * 0.35 + 255 * 0.65).astype(np.uint8) if stale else real)
        axes[1][column].imshow(history["dream"][k])
        if stale:
            axes[2][column].imshow(np.full((64, 64, 3), 235, np.uint8))
            axes[2][column].text(32, 32, "episode\nover", ha="center", va="center", fontsize=FONT, color="0.35")
        else:
            axes[2][column].imshow(history["error_frame"][k].mean(-1), cmap="magma", vmin=0, vmax=255)
        axes[0][column].set_title(f"+{history['step'][k]}" + (" (ended)" if stale else ""), fontsize=FONT)
        real_reward = "-" if np.isnan(history["real_reward"][k]) else f"{history['real_reward'][k]:.2f}"
        error = "-" if np.isnan(history["error"][k]) else f"{history['error'][k]:.3f}"
        axes[2][column].set_xlabel(f"r {real_reward}\npred {history['predicted_reward'][k]:.2f}\n"
                                   f"v {history['value'][k]:.1f}\nmse {error}", fontsize=FONT)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title or "Your actions in the dream (world model, prior only) and in the simulator\n"
                 "r: real reward, pred: predicted reward, v: value (both / reward_scale, env units)", fontsize=FONT + 1)
    fig.tight_layout()
    return fig
