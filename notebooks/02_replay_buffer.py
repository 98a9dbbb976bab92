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
# # Lesson 2: The replay buffer
#
# *Time to run:* ci: 2 s, cpu (2 cores): 2 s, gpu: not measured yet (cpu: an Intel Xeon) · Words: the [glossary](GLOSSARY.md).
#
# Dreamer keeps every episode it has played and trains the world model on **windows**: B
# stretches of T consecutive steps, cut from random episodes at random places (the paper and the
# official code: B = 50 windows of T = 50 steps per update). This lesson builds the sampler
# (exercise 2.1), shows why a window must never cross the end of an episode, looks at sampled
# batches, and counts what a buffer costs in memory and on disk.
#
# ```
# env -> [REPLAY BUFFER] -> (T, B) windows -> world model -> imagination -> actor-critic -> env
# ```
#
# Sequences, not single frames, because the RSSM is recurrent (lesson 3): its state $h_t$
# summarises all earlier steps of the window, and the world model is trained to predict step
# $t$ from steps $< t$ and the actions. The RSSM starts every window from a zero state, as the
# official code does, so T must be long enough for that state to fill with information.

# %%
from dreamer_lib.course.scale import setup

scale = setup("Lesson 2: replay buffer")

# %%
import inspect
import pathlib
import shutil
import tempfile
import warnings

import matplotlib.pyplot as plt
import numpy as np

from dreamer_lib import envs, viz
from dreamer_lib.buffer import FRAME_BYTES, KEYS, ReplayBuffer
from dreamer_lib.config import PRESETS, make_config

# %% [markdown]
# ## Episodes in, episodes kept
#
# `ReplayBuffer.add_episode` takes an episode in the layout of lesson 0 (one row per agent step,
# the reset row included) and keeps it whole. We fill a buffer with random-policy episodes, as
# Dreamer does before its first update (`prefill_frames`), plus one deliberately short episode
# (a 20-frame time limit: 10 agent steps) to stand for the short episodes that early terminations
# produce in other tasks.

# %% [markdown]
# **Predict before you run.** How many rows will the short episode (10 agent steps) have? And will
# the buffer's count of observations in RAM be larger or smaller than its count of agent steps, and
# by how much? Write down your guess, then run the next cell.

# %%
config = scale.config
directory = pathlib.Path(tempfile.mkdtemp(prefix="dreamer_lesson2_"))
buffer = ReplayBuffer(directory, capacity=config.replay_capacity, seed=0)
env = envs.make_env(config.env, time_limit=config.time_limit, seed=0)
for _ in range(scale.pick(gpu=8, cpu=8, ci=3)):
    buffer.add_episode(envs.run_episode(env))
buffer.add_episode(envs.run_episode(envs.make_env(config.env, time_limit=20, seed=1)))
print("episodes:", len(buffer), "| rows per episode:", [len(e["image"]) for e in buffer.episodes])
print("agent steps:", buffer.agent_steps, "| observations in RAM:", buffer.stored_steps)

# %% [markdown]
# ## Why a window must not cross an episode end
#
# Concatenating the episodes into one long stream and cutting windows anywhere would be simpler.
# But look at what such a window contains where one episode ends and the next begins:

# %%
first, second = buffer.episodes[0], buffer.episodes[1]
crossing = np.concatenate([first["image"][-6:], second["image"][:6]])
fig, ax = plt.subplots(figsize=(10, 1.6))
ax.imshow(viz.filmstrip(crossing))
for x in range(64, 12 * 64, 64):
    ax.axvline(x - 0.5, color="C3" if x == 6 * 64 else "0.85", lw=2 if x == 6 * 64 else 0.8)
ax.set_title("a window across an episode end: the last 6 steps of episode 0 | the first 6 of episode 1", fontsize=9)
ax.axis("off")
plt.show()
print("actions around the cut:", np.concatenate([first["action"][-2:, 0], second["action"][:2, 0]]).round(2),
      "| rewards:", np.concatenate([first["reward"][-2:], second["reward"][:2]]).round(1))

# %% [markdown]
# At the red line the pendulum jumps to a new random state, although the action row says
# "zero torque" and the physics allow nothing of the sort. A world model trained on such windows
# would be asked to predict a reset as if it were dynamics: it would learn that the pendulum
# sometimes teleports, and its imagined rollouts (lesson 5) would teleport too. Episodes that end
# by termination have the same problem with the terminal step's discount. So the sampler picks
# an **episode** first and a **start inside it** second; every window is
# `episode[key][start:start + T]` of one episode.
#
# ## Exercise 2.1: sample windows
#
# *(★★☆, ~20 min)*
#
# Write `sample_windows(episodes, batch_size, seq_len, rng)`, the heart of
# `ReplayBuffer.sample`:
#
# 1. `candidates`: the episodes with at least `seq_len` rows, in their order (shorter ones have no
#    window); if there are none, raise a `ValueError`;
# 2. draw all episode indices at once, `rng.integers(len(candidates), size=batch_size)`: uniform
#    over **episodes**, as the official code, not over steps;
# 3. for each drawn episode in turn, a start `rng.integers(len(episode["image"]) - seq_len + 1)`
#    (numpy's upper bound is exclusive: an episode of exactly `seq_len` rows has one window);
# 4. slice every key with that start and stack the windows **time-major**: `(T, B, ...)`.
#
# With that draw order your batches equal the library's for the same seed, which the check tests
# last. Why time-major: the RSSM loops over time, and `batch["image"][t]` is then one contiguous
# `(B, 64, 64, 3)` slice. (The official code stores batch-major and transposes inside the RSSM;
# `dreamer_lib` is time-major everywhere.)

# %%
def sample_windows(episodes, batch_size, seq_len, rng):
    """batch_size windows of seq_len consecutive rows, each from one episode: a dict with the keys
    image (T, B, 64, 64, 3), action (T, B, A), reward (T, B), not_terminal (T, B)."""
    # BEGIN SOLUTION 2.1: uniform episode among those >= seq_len rows, then uniform start; stack time-major
    candidates = [e for e in episodes if len(e["image"]) >= seq_len]
    if not candidates:
        raise ValueError(f"No episode has {seq_len} steps to sample a window from.")
    windows = {key: [] for key in KEYS}
    for index in rng.integers(len(candidates), size=batch_size):
        episode = candidates[index]
        start = rng.integers(len(episode["image"]) - seq_len + 1)
        for key in KEYS:
            windows[key].append(episode[key][start:start + seq_len])
    return {key: np.stack(value, axis=1) for key, value in windows.items()}
    # END SOLUTION


# %%
from dreamer_lib.course.checks.buffer import check_sample_windows

check_sample_windows(sample_windows)

# %% [markdown]
# A batch of B = 4 windows of T = 16 steps from our buffer, and the library's sampler on the same
# seed for comparison (`ReplayBuffer.sample` keeps its own generator, `buffer.rng`):

# %%
# NBVAL_CHECK_OUTPUT
batch = sample_windows(list(buffer.episodes), batch_size=4, seq_len=16, rng=np.random.default_rng(1))
for key, value in batch.items():
    print(f"{key:12s} {str(value.shape):22s} {value.dtype}")
buffer.rng = np.random.default_rng(1)
library = buffer.sample(batch_size=4, seq_len=16)
print("identical to ReplayBuffer.sample:", all(np.array_equal(batch[k], library[k]) for k in KEYS))

# %% [markdown]
# Each row below is one window (one column of the (T, B) batch), its 16 steps left to right.
# Inside a row the pendulum moves smoothly; rows start at unrelated moments of unrelated
# episodes. The short episode never appears: it has 11 rows, fewer than T = 16.

# %%
strips = [viz.filmstrip(batch["image"][:, b]) for b in range(batch["image"].shape[1])]
fig, ax = plt.subplots(figsize=(12, 3.4))
ax.imshow(np.concatenate(strips))
ax.set_yticks([32 + 64 * b for b in range(len(strips))],
              [f"window b={b}" for b in range(len(strips))], fontsize=8)
for x in range(64, 16 * 64, 64):
    ax.axvline(x - 0.5, color="0.85", lw=0.8)
ax.set_xticks([32 + 64 * t for t in range(0, 16, 3)], [f"t={t}" for t in range(0, 16, 3)], fontsize=8)
ax.set_title("batch['image'][:, b] for each b: time runs left to right", fontsize=9)
plt.show()

# %% [markdown]
# ### Which steps the model sees
#
# Uniform starts do not mean uniform coverage. A step in the middle of an episode lies in T
# different windows; step 0 (the reset frame) lies only in the window that starts at 0, and the
# last step only in the window that ends there. Counting how often each row of a 101-row episode
# appears in windows of the cpu preset's length (T = 24) drawn by your sampler:

# %%
from dreamer_lib.course.checks.buffer import make_episode

rows, T = 101, PRESETS["cpu"]["seq_len"]
draws = scale.pick(gpu=20000, cpu=20000, ci=2000)
windows = sample_windows([make_episode(0, rows)], draws, T, np.random.default_rng(0))
counts = np.bincount((windows["reward"] % 1000).astype(int).ravel(), minlength=rows)
t = np.arange(rows)
expected = draws * np.minimum.reduce([t + 1, np.full(rows, T), rows - t, np.full(rows, rows - T + 1)]) / (rows - T + 1)
fig, ax = plt.subplots(figsize=(7, 2.8))
ax.bar(t, counts, width=1.0, alpha=0.6, label=f"rows seen in {draws} windows of T = {T}")
ax.plot(t, expected, "k", lw=1, label="expected: min(t + 1, T, rows - t) / number of starts")
ax.set_xlabel("row of the episode (0 = reset frame)")
ax.set_ylabel("times sampled")
ax.legend(fontsize=8, loc="lower center")
plt.show()

# %% [markdown]
# The first and last T - 1 rows are seen less, the reset frame least of all: a known property of
# the official sampler that we keep. It matters little for Pendulum, whose start states are
# ordinary states, but it is one reason the world model is worst at the first steps of an
# episode.
#
# ## Memory: 12,288 bytes a frame
#
# Frames are stored as `uint8`: $64 \cdot 64 \cdot 3 = 12{,}288$ bytes each, so a million
# observations take 12.3 GB (as float32 they would take 49 GB). Actions, rewards and discounts are
# a few bytes per step. The buffer holds at most `replay_capacity` observations in RAM and evicts
# the oldest episodes beyond that (their files stay on disk). The presets:

# %%
# NBVAL_CHECK_OUTPUT
print(f"one frame: {FRAME_BYTES:,} bytes; 1,000,000 frames: {1e6 * FRAME_BYTES / 1e9:.1f} GB")
for preset in PRESETS:
    capacity = make_config(preset).replay_capacity
    print(f"preset {preset:5s}: replay_capacity {capacity:>9,} observations = {capacity * FRAME_BYTES / 1e9:6.2f} GB of frames")
print(f"the paper's 5M env frames at action repeat 2: 2.5M observations = {2.5e6 * FRAME_BYTES / 1e9:.0f} GB")

# %% [markdown]
# The paper preset's capacity covers the first 2M env frames of a run (1M agent steps) before
# anything is evicted; the official code kept every episode in RAM, which a long run on a
# workstation can afford and a laptop cannot.
#
# ## Episodes on disk
#
# Every finished episode is also written at once to the buffer's directory as a compressed
# `.npz` file, named by its index and its number of agent steps:

# %%
files = sorted(directory.glob("*.npz"))
for path in files[:3] + files[-1:]:
    print(f"{path.name}  {path.stat().st_size / 1e3:6.1f} kB")
raw = sum(e["image"].nbytes for e in buffer.episodes)
on_disk = sum(p.stat().st_size for p in files)
print(f"{len(files)} files, {on_disk / 1e6:.2f} MB on disk for {raw / 1e6:.2f} MB of frames in RAM "
      f"(Pendulum's white background compresses well)")

# %%
print(inspect.getsource(ReplayBuffer.add_episode))

# %% [markdown]
# Why write each episode at once, rather than pickling the buffer now and then? Because then a
# crash loses nothing but the episode being played: the files *are* the record of everything the
# agent collected, and a resumed run (lesson 6) rebuilds its buffer with `load()`. The file is
# written under a temporary name and renamed when complete, an atomic step, so a crash in the
# middle of writing leaves no half file under a real name. A damaged file from elsewhere is
# skipped with a warning rather than killing the run:

# %%
(directory / "999999-7.npz").write_bytes(b"not an episode")
restored = ReplayBuffer(directory, capacity=config.replay_capacity)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    print("episodes loaded:", restored.load())
print("warning:", str(caught[0].message).split(" (")[0].replace(f"{directory}/", "") if caught else None)
print("same episodes as before:", len(restored) == len(buffer) and all(
    np.array_equal(a[k], b[k]) for a, b in zip(restored.episodes, buffer.episodes) for k in KEYS))

# %% [markdown]
# ## Summary
#
# - The buffer keeps whole episodes, in RAM and as one `.npz` file each on disk; a damaged file
#   is skipped with a warning.
# - The sampler picks an episode, then a start inside it: every window of T steps lies inside
#   one episode, and B windows are stacked time-major as `(T, B, ...)`, what the world model
#   consumes. A window across an episode end would show the pendulum teleporting.
# - Uniform starts see the first and last T - 1 rows of an episode less often, the reset frame
#   least.
# - Frames are `uint8`, 12,288 bytes each; `replay_capacity` bounds the frames kept in RAM.
#
# [Lesson 3](03_rssm.ipynb) builds the RSSM that runs over those T steps.

# %%
shutil.rmtree(directory)  # the lesson's episode files; a training run keeps its own
print(f"Lesson 2 ran in {scale.elapsed()} at scale {scale.name}")
