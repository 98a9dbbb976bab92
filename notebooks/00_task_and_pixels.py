# %%
# On Colab, install the course library (the base package: Pendulum needs no MuJoCo); anywhere
# else this cell does nothing. It is the same in every lesson and workbook: its one source is
# tools/colab_cell.py, which `python tools/make_workbooks.py` copies into each lesson (a test
# checks). A failed install prints what to do instead of stopping the lesson here.
import sys

if "google.colab" in sys.modules:
    import importlib
    import importlib.util
    import subprocess

    SOURCE = "git+https://github.com/dreamer-course/dreamer-course"  # the course repository
    if importlib.util.find_spec("dreamer_lib") is None:  # not installed in this runtime yet
        pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"dreamer-course @ {SOURCE}"],
                             capture_output=True, text=True)
        importlib.invalidate_caches()
        if pip.returncode == 0:
            print(f"Installed the course library from {SOURCE}.")
        else:
            said = (pip.stderr or pip.stdout).strip().splitlines()
            print(f"Could not install the course library from {SOURCE} (pip: {said[-1] if said else pip.returncode}). "
                  "Fix: check that this runtime is online, then run this cell again. Or install it another way "
                  "and run this cell again (it then does nothing): download the repository as a zip (on GitHub: "
                  "Code > Download ZIP), upload it in Colab's Files panel and run "
                  "`!unzip -q dreamer-course-main.zip && pip install -q ./dreamer-course-main`; or, with a copy "
                  "of the repository on Google Drive or another local path, `!pip install -q /path/to/dreamer-course`.")

# %% [markdown]
# # Lesson 0: The task and its pixels
#
# *Time to run:* ci: 2 s, cpu (2 cores): 2 s, gpu: not measured yet (cpu: an Intel Xeon) · Words: the [glossary](GLOSSARY.md).
#
# **Dreamer** (Hafner et al. 2020, *Dream to Control*) learns to act from pixels in three loops
# that run side by side. It learns a **world model** from replayed experience: an encoder turns
# each 64x64 frame into features, a recurrent state-space model (RSSM) learns how a compact latent
# state moves under actions, and heads decode that state back into images and rewards (section 4
# of the paper). It learns **behaviour in imagination**: starting from states the model inferred
# from real data, it rolls the RSSM forward 15 steps under the actor's own actions, predicts the
# rewards, and trains the actor by backpropagating value estimates through those imagined
# dynamics, while a critic learns the values beyond the horizon (section 3). And it **acts** in the
# real environment with that actor, adding each new episode to the replay buffer.
#
# ```
# env (L0) ── frames o_t, rewards r_t ──▶ replay buffer (L2)
#    ▲                                          │ windows (T, B) of consecutive steps
#    │                                          ▼
#    │                               world model: encoder/decoder (L1), RSSM (L3), training (L4)
#    │                                          │ latent states (h_t, z_t) inferred from real frames
#    │                                          ▼
#    │                               imagination: the RSSM rolled forward without frames (L3, L5)
#    │                                          │ imagined states, rewards, values
#    │                                          ▼
#    └──── actions a_t in [-1, 1] ──── actor-critic (L5)      the whole loop: L6; looking inside: L7
# ```
#
# | lesson | you build | you see |
# |---|---|---|
# | **0 task and pixels** | the env as Dreamer sees it, episodes, action repeat | a random episode as frames, a clip, its rewards |
# | [1 encoder and decoder](01_encoder_decoder.ipynb) | `ConvEncoder`, `ConvDecoder`, the image likelihood | an autoencoder's reconstructions |
# | [2 replay buffer](02_replay_buffer.ipynb) | window sampling, episode files | sampled (T, B) windows as filmstrips |
# | [3 RSSM](03_rssm.ipynb) | the deterministic + stochastic latent state, prior, posterior, KL with free nats | what the prior and posterior do on real sequences |
# | [4 world model training](04_world_model.ipynb) | one world-model training step, open-loop prediction | loss curves, reconstructions, the `openl` strip |
# | [5 actor-critic in imagination](05_actor_critic.ipynb) | lambda-returns, the actor loss through the dynamics | imagined rollouts and their returns |
# | [6 Dreamer end to end](06_dreamer_end_to_end.ipynb) | the full training loop (algorithm 1) | a learning curve on pixel Pendulum, the trained policy |
# | [7 imagination debugger](07_imagination_debugger.ipynb) | tools to look inside a trained agent | what the agent imagines next to what happens |
#
# **This lesson** looks at the first box: the environment. You will see exactly what Dreamer
# observes (64x64x3 uint8 frames, nothing else), what its actions mean, how one *agent step* is
# two *env frames* (action repeat), play a random episode, and learn the episode layout that the
# replay buffer (lesson 2) stores. In exercise 0.1 you write action repeat yourself.

# %%
from dreamer_lib.course.scale import setup

scale = setup("Lesson 0: task and pixels")

# %%
import inspect

import gymnasium as gym
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import HTML

from dreamer_lib import envs, viz
from dreamer_lib.course import pictures

# %% [markdown]
# ## The environment as Dreamer sees it
#
# Our running task is gymnasium's **Pendulum-v1** from pixels: swing a pendulum up and hold it
# upright with a weak motor. It is the classic-control cousin of the paper's DeepMind Control
# `pendulum_swingup` and it learns on a laptop CPU. `dreamer_lib.envs.make_env("pendulum")`
# wraps it the way the official code wraps DeepMind Control (`dmc_walker_walk` and friends work
# the same way, with `pip install -e ".[dmc]"`):
#
# - **observations** are the rendered frame, resized to 64x64 and kept as `uint8`; the agent never
#   sees the angle or the angular velocity, so it must infer velocity from several frames;
# - **actions** live in $[-1, 1]^A$ for every env and are mapped linearly onto the env's own bounds
#   (Pendulum: a torque in $[-2, 2]$), so the actor's tanh output fits any task;
# - **action repeat 2** (the paper's setting on DeepMind Control): one agent step applies the
#   action for 2 env frames and sums their rewards;
# - a **time limit counted in env frames**: 200 for Pendulum, i.e. 100 agent steps per episode.

# %%
# NBVAL_CHECK_OUTPUT
env = envs.make_env("pendulum", seed=0)
print("observation space:      ", env.observation_space)
print("action space (agent):   ", env.action_space)
print("action space (Pendulum):", env.env.action_space)
print("action repeat:", env.action_repeat, "| time limit:", env.time_limit, "env frames =",
      env.time_limit // env.action_repeat, "agent steps")

# %% [markdown]
# Gymnasium draws Pendulum at 500x500; the wrapper shrinks each frame to 64x64 with bilinear
# filtering. Left is what a person sees, right is everything the agent gets:

# %%
image, _ = env.reset(seed=0)
fig, axes = plt.subplots(1, 2, figsize=(6, 3))
axes[0].imshow(env.env.render())
axes[0].set_title(f"gymnasium's render {env.env.render().shape}", fontsize=9)
axes[1].imshow(image)
axes[1].set_title(f"Dreamer's observation {image.shape} {image.dtype}", fontsize=9)
for ax in axes:
    ax.axis("off")
plt.show()

# %% [markdown]
# Here is the wrapper's `step`, the whole contract in a dozen lines: clip, rescale, repeat while
# summing rewards, count frames, truncate at the time limit, render the last frame.

# %%
print(inspect.getsource(envs.DreamerEnv.step))

# %% [markdown]
# The rescaling is `low + (a + 1) * (high - low) / 2`, which sends $-1 \mapsto$ low,
# $0 \mapsto$ the middle and $+1 \mapsto$ high:

# %%
# NBVAL_CHECK_OUTPUT
low, high = env.env.action_space.low, env.env.action_space.high
for a in (-1.0, -0.5, 0.0, 0.5, 1.0):
    torque = low + (a + 1) * ((high - low) / 2)
    print(f"agent action {a:+.1f} -> torque {torque[0]:+.1f}")

# %% [markdown]
# ### Env frames vs. agent steps
#
# Papers count **env frames** (simulator steps): the paper's "5 x 10^6 environment steps" on
# DeepMind Control are 2.5 million agent steps at action repeat 2, and our `Config.total_frames`,
# `prefill_frames`, `train_every` and `eval_every` are env frames too. The agent, the replay buffer
# and the world model only ever see **agent steps**: one frame every 2 env frames, one action per
# agent step, one summed reward per agent step. Action repeat makes credit assignment easier
# (half as many decisions per second of simulated time) and halves the cost of acting and
# storing; the world model has to predict 2 frames ahead instead of 1.
#
# ## A random episode
#
# `envs.run_episode(env)` plays one episode (uniformly random actions when no policy is given) and
# returns it in the layout the replay buffer stores:

# %% [markdown]
# **Predict before you run.** An episode lasts 200 env frames at action repeat 2. How many rows
# will each array of the episode have: 100, 101 or 200? And what action and reward will the first
# row, written at reset before any step, hold? Write down your guess, then run the next cell.

# %%
# NBVAL_CHECK_OUTPUT
episode = envs.run_episode(env)
for key, value in episode.items():
    print(f"{key:12s} {str(value.shape):18s} {value.dtype}")
print("agent steps:", len(episode["reward"]) - 1, "| env frames:", (len(episode["reward"]) - 1) * env.action_repeat)
print("reset row:   action", episode["action"][0], "reward", episode["reward"][0], "not_terminal", episode["not_terminal"][0])

# %% [markdown]
# One row per agent step, **the reset row included**, so an episode of $L = 100$ steps has
# $L + 1 = 101$ rows. Row $t$ holds
#
# | key | shape | meaning |
# |---|---|---|
# | `image` | (L+1, 64, 64, 3) uint8 | $o_t$, the frame after step $t$ ($o_0$: after reset) |
# | `action` | (L+1, A) float32 | $a_{t-1}$, the action that **led to** $o_t$ (zeros in the reset row) |
# | `reward` | (L+1,) float32 | $r_t$, received on arriving at $o_t$ (0 in the reset row) |
# | `discount` | (L+1,) float32 | 0 if $o_t$ is terminal, else 1 |
#
# This is the official code's layout. Pairing each frame with the action *before* it is what
# the RSSM needs: its step is $h_t = f(h_{t-1}, z_{t-1}, a_{t-1})$, then $z_t$ is inferred from
# $o_t$ (lessons 3-4), so `action[t]` and `image[t]` enter the same step. Pendulum never terminates
# (it is only cut off by the time limit, which is not a terminal state), so `discount` is all ones.
#
# Every 5th frame of the episode. The grey arc at the pivot is gymnasium's drawing of the last
# torque applied (its size is the magnitude, its direction the sign): the frame shows the previous
# action too.

# %%
fig, ax = plt.subplots(figsize=(12, 2.6))
ax.imshow(viz.filmstrip(episode["image"], every=5, columns=11))
for x in range(64, 11 * 64, 64):
    ax.axvline(x - 0.5, color="0.85", lw=0.8)
ax.axhline(64 - 0.5, color="0.85", lw=0.8)
ax.set_title("random policy, every 5th agent step (0, 5, ..., 100), left to right then next row", fontsize=9)
ax.axis("off")
plt.show()

# %% [markdown]
# And as a clip at real time (one agent step = 2 env frames = 0.1 s of simulated time):

# %%
HTML(pictures.animation_html(episode["image"], fps=10, scale=2))

# %% [markdown]
# ### Rewards
#
# Pendulum's reward per env frame is $-(\theta^2 + 0.1\,\dot\theta^2 + 0.001\,u^2)$ with the angle
# $\theta \in [-\pi, \pi]$ measured from upright, so it lies in $[-16.3, 0]$, and an agent step's
# (two frames) in $[-32.5, 0]$. It is dense and always negative: the best an agent can do is
# reach upright fast and stay there (a good episode scores about $-150$). The reward depends on
# the velocity, which no single frame shows: one more reason the world model needs memory.

# %%
fig, ax = plt.subplots(figsize=(7, 2.8))
ax.plot(np.arange(1, len(episode["reward"])), episode["reward"][1:], ".-", label="reward per agent step")
ax.axhline(-2 * (np.pi**2 + 0.1 * 8**2 + 0.001 * 2**2), color="grey", ls="--", lw=1, label="lowest possible")
ax.axhline(0, color="k", lw=0.5)
ax.set_xlabel("agent step t")
ax.set_ylabel("r_t")
ax.set_title(f"random policy, return {episode['reward'].sum():.0f}", fontsize=9)
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# A few more random episodes give the baseline every learning curve in this course starts from:

# %%
returns = [envs.run_episode(env)["reward"].sum() for _ in range(scale.pick(gpu=10, cpu=10, ci=2))]
print(f"random policy: return {np.mean(returns):.0f} +- {np.std(returns):.0f} over {len(returns)} episodes")

# %% [markdown]
# ## Exercise 0.1: action repeat
#
# *(★☆☆, ~10 min)* Every exercise of the course carries such a tag: its difficulty (★☆☆ easy,
# ★★☆ medium, ★★★ hard) and about how many minutes it takes.
#
# Write `repeat_action(env, action, repeat)` for a **raw** gymnasium env: apply `action` for up to
# `repeat` env frames, add up the rewards, and return `(observation, total_reward, terminated,
# truncated, info)` of the last frame played. If the episode ends (terminated or truncated) before
# `repeat` frames, stop there: stepping a finished env is an error. The action is passed to
# `env.step` unchanged (here it is already in the env's own units).

# %%
def repeat_action(env, action, repeat):
    """Step `env` with `action` up to `repeat` times; return the last frame's (observation,
    summed reward, terminated, truncated, info)."""
    # BEGIN SOLUTION 0.1: step env up to `repeat` times with `action`, summing rewards; stop when the episode ends
    total = 0.0
    for _ in range(repeat):
        observation, reward, terminated, truncated, info = env.step(action)
        total += float(reward)
        if terminated or truncated:
            break
    return observation, total, terminated, truncated, info
    # END SOLUTION


# %%
from dreamer_lib.course.checks.envs import check_repeat_action

check_repeat_action(repeat_action)

# %% [markdown]
# Your function plus the rescaling from above is the reward side of `DreamerEnv`. On a raw
# Pendulum, reset to the same state as a wrapped one and driven by the same agent actions, it earns
# exactly the wrapper's rewards:

# %%
# NBVAL_CHECK_OUTPUT
raw = gym.make("Pendulum-v1")
wrapped = envs.make_env("pendulum")
raw.reset(seed=1)
wrapped.reset(seed=1)
rng = np.random.default_rng(0)
differences = []
for t in range(50):
    a = rng.uniform(-1, 1, size=1).astype(np.float32)
    _, reward_wrapped, *_ = wrapped.step(a)
    _, reward_yours, *_ = repeat_action(raw, low + (a + 1) * ((high - low) / 2), repeat=2)
    differences.append(abs(reward_wrapped - reward_yours))
print(f"50 agent steps, largest reward difference: {max(differences):.1e}")

# %% [markdown]
# ## Summary
#
# - Dreamer sees only 64x64x3 `uint8` frames; its actions are in $[-1, 1]$ and the wrapper scales
#   them to the env's own range.
# - Action repeat 2: one agent step is two env frames, and its reward is the sum of the two; a
#   Pendulum episode is 200 env frames = 100 agent steps = 101 rows, the reset row included.
# - Row $t$ of an episode holds the frame $o_t$, the action that led to it, the reward received
#   on arriving and the discount.
# - Random play scores about $-1{,}200$ an episode (the cell above: 10 episodes); the reward is
#   dense and never positive.
#
# Next, [lesson 1](01_encoder_decoder.ipynb) builds the convolutional encoder that turns each
# frame into 1024 features and the decoder that turns a latent state back into a frame.

# %%
print(f"Lesson 0 ran in {scale.elapsed()} at scale {scale.name}")
