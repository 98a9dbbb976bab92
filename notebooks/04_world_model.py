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
# # Lesson 4: Training the world model
#
# *Time to run:* ci: 7 s, cpu (2 cores): 3 min, gpu: not measured yet (cpu: an Intel Xeon) · Words: the [glossary](GLOSSARY.md).
#
# Lessons 1-3 built the parts: the encoder and decoder, the replay buffer, the RSSM. Here they
# become one **world model** trained on real experience, the first half of every Dreamer update
# (algorithm 1 of the paper, "Dynamics learning"). You will
#
# - collect random-action Pendulum episodes into a replay buffer,
# - read the world-model loss: image reconstruction + reward prediction + KL with free nats,
# - write one training step (exercise 4.1) and run it for a few hundred to a few thousand updates,
# - look at the loss curves and at reconstructions,
# - write the **open-loop prediction** (exercise 4.2): the model watches 5 frames, then predicts the
#   rest of the sequence from the actions alone. This is the picture the official code logs as
#   `openl`, and the most honest test of a world model: everything Dreamer's actor will learn
#   (lesson 5) happens inside such predictions.
#
# Where this sits: env → replay buffer → **world model** → imagination → actor-critic → env.

# %%
from dreamer_lib.course.scale import setup

scale = setup("Lesson 4: training the world model")

# %% [markdown]
# ## 1. Experience: random episodes
#
# Dreamer starts by filling its buffer with episodes of uniformly random actions (the official
# code's prefill: 5000 env frames on DeepMind Control). A random Pendulum episode is enough to
# learn the physics: the pole falls, swings, and the random torques push it around. Each
# episode lasts 200 env frames = 100 agent steps at action repeat 2 (fewer at the tiny ci scale).

# %%
import copy
import inspect

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import HTML
from torch import nn

from dreamer_lib import viz
from dreamer_lib.agent import DreamerV1
from dreamer_lib.buffer import ReplayBuffer
from dreamer_lib.course import pictures
from dreamer_lib.envs import make_env, run_episode
from dreamer_lib.networks import preprocess, to_uint8

config = scale.config
env = make_env(config.env, config.action_repeat, config.time_limit, seed=config.seed)
buffer = ReplayBuffer(capacity=config.replay_capacity, seed=config.seed)
for _ in range(scale.pick(gpu=50, cpu=20, ci=2)):
    buffer.add_episode(run_episode(env))
print(f"{len(buffer)} random episodes, {buffer.agent_steps} agent steps, "
      f"{buffer.stored_steps * 64 * 64 * 3 / 1e6:.1f} MB of frames")
print(f"training batches: {config.batch_size} sequences x {config.seq_len} steps (preset {config.preset})")

episode = buffer.episodes[0]
plt.figure(figsize=(12, 2.6))
plt.imshow(viz.filmstrip(episode["image"][:40], every=2, columns=10))
plt.axis("off")
plt.title("the first 40 steps of a random episode, every 2nd frame (the grey arc shows the torque)", fontsize=9)
plt.show()

# %% [markdown]
# ## 2. The loss
#
# The agent below holds the encoder, RSSM, decoder and reward head (and an actor and critic,
# untouched in this lesson). Its `world_model_loss` is Dreamer's reconstruction objective
# (section 4, "Reconstruction"), a sequential ELBO averaged over batch and time:
#
# $$
# \mathcal{L} = \underbrace{-\ln p(o_t \mid s_t)}_{\text{image}}
#   \;\underbrace{-\ln p(r_t \mid s_t)}_{\text{reward}}
#   \;+\; \beta\,\max\big(\overline{\mathrm{KL}}(q(z_t \mid h_t, e_t)\,\|\,p(z_t \mid h_t)),\ 3\big),
# \qquad \beta = 1 .
# $$
#
# with $s_t = (h_t, z_t)$ the posterior state. (The paper's eq. 10 writes the observation and reward
# models with $q$: its letters are swapped, lesson 3; here $p$ is the generative model throughout.)
#
# - **Image**: the decoder's output is the mean of a unit-variance Gaussian over all
#   $64 \times 64 \times 3$ pixels, so the negative log-likelihood is $\frac12$ × the squared error
#   summed over the pixels, plus a constant $\frac12 \ln(2\pi) \times 12288 \approx 11291$ nats that
#   we keep so the numbers read as the official code's.
# - **Reward**: a unit-variance Gaussian over $r_t$ from the features of the same posterior state,
#   i.e. the reward received on arriving in $s_t$ (the buffer's convention, lesson 2). The cpu and
#   ci presets multiply Pendulum's rewards (in $[-32.5, 0]$ per agent step: two env frames of
#   $[-16.3, 0]$) by `reward_scale` = 0.1 first, so that they are closer to the $[0, 2]$ per agent
#   step of DeepMind Control, where the paper's settings were tuned.
# - **KL**: your `kl_loss` from lesson 3: free nats on the batch-mean KL.
#
# Everything is computed from the *posterior* states of the filtered sequence. Only the KL term
# trains the prior, and only through it does the model learn to predict without observations.

# %%
print(inspect.getsource(DreamerV1.world_model_loss))

# %% [markdown]
# **Predict before you run.** The next cell computes the untrained model's loss on one batch.
# Which of its three terms, `image_loss`, `reward_loss` or `kl`, will be the largest, and by about
# how many orders of magnitude? What shape will the posterior's `stoch` have for this scale's
# batches (printed in section 1)? Write down your guess, then run the next cell.

# %%
agent = DreamerV1(config, action_size=env.action_space.shape[0], device=scale.device)
for name in ("encoder", "rssm", "decoder", "reward"):
    print(f"{name:8s} {sum(p.numel() for p in getattr(agent, name).parameters()):>10,} parameters")
print(f"world model: {sum(p.numel() for p in agent.params['model']):,} parameters in agent.params['model'], "
      f"optimised by agent.optimizers['model'] (Adam, lr {config.model_lr}, eps {config.adam_eps})")

batch = buffer.sample(config.batch_size, config.seq_len)
with torch.no_grad(), agent.autocast():
    loss, posterior, metrics = agent.world_model_loss(*agent.to_batch(batch))
print("one batch, untrained:", {k: round(v.item(), 3) for k, v in metrics.items()})
print("posterior states:", tuple(posterior.stoch.shape), "(T, B, stoch)")

# %% [markdown]
# ## 3. One training step
#
# An update of the world model is the standard PyTorch step, with two details from the paper's
# setup:
#
# 1. compute the loss (under `agent.autocast()`: bf16 on a GPU that has it, a no-op on the CPU);
# 2. `zero_grad()` first: PyTorch *adds* new gradients to whatever `.grad` holds;
# 3. `backward()`;
# 4. clip the gradients to a global norm of `agent.config.grad_clip` (100 in every preset, as the
#    official code) with `nn.utils.clip_grad_norm_` over `agent.params["model"]`, **before**
#    stepping: it rescales `.grad` in place, which only matters if the optimiser has not used it
#    yet. Use `agent.config.grad_clip`, never the number: the check runs your step with other
#    values. Keep its return value (the norm before clipping) as `metrics["model_grad_norm"]`;
# 5. step the **model** optimiser `agent.optimizers["model"]`. The agent has three Adam optimisers
#    with different learning rates (model 6e-4, actor and critic 8e-5); the world model uses its own.
#
# (`agent.update` does all three models at once, with `torch.autograd.grad` instead of `backward`;
# in this lesson only the world model learns. The library has this step too,
# `agent.update_world_model(batch)`, which lessons 5 and 7 use; the check compares yours with it.)
#
# **Exercise 4.1.** *(★☆☆, ~10 min)* Write `world_model_step(agent, batch)`; it returns the loss
# metrics, detached.

# %%
def world_model_step(agent, batch):
    """One world-model update on a sampled numpy batch; returns the metrics (detached tensors)."""
    images, actions, rewards, not_terminal = agent.to_batch(batch)
    # BEGIN SOLUTION 4.1: loss under agent.autocast(); zero_grad, backward, clip to agent.config.grad_clip (keep the norm as metrics['model_grad_norm']), step agent.optimizers['model']
    with agent.autocast():
        loss, _, metrics = agent.world_model_loss(images, actions, rewards, not_terminal)
    optimizer = agent.optimizers["model"]
    optimizer.zero_grad()
    loss.backward()
    metrics["model_grad_norm"] = nn.utils.clip_grad_norm_(agent.params["model"], agent.config.grad_clip)
    optimizer.step()
    # END SOLUTION
    return {k: v.detach() for k, v in metrics.items()}


# %%
from dreamer_lib.course.checks.world_model import check_open_loop, check_world_model_step

check_world_model_step(world_model_step)

# %% [markdown]
# The library's version, which the check compared yours with. Its gradient helper (shared with
# `agent.update`, which does the same for all three groups) asks `torch.autograd.grad` for the
# world model's gradient and *assigns* it to `.grad`, so there is nothing left over to zero; then
# it clips to `config.grad_clip` and the model optimiser steps, as in your version:

# %%
print(inspect.getsource(DreamerV1.update_world_model))

# %% [markdown]
# ## 4. Training
#
# Now the loop: sample a batch of sequences, take a step, record the metrics. At the gpu scale
# this is 3000 updates at the paper's sizes (batch 50 × 50 steps); at the cpu scale 1200 updates
# of the smaller cpu preset (batch 16 × 24 steps), the longest part of this lesson: the pole
# is a few percent of the pixels and the last thing the image loss pays for. The loop keeps a
# copy of the weights after a third of the updates, so that section 7 can show what the model
# predicted then.

# %%
updates = scale.pick(gpu=3000, cpu=1200, ci=3)
early_updates = max(1, updates // 3)
log = []
for update in range(1, updates + 1):
    log.append(world_model_step(agent, buffer.sample(config.batch_size, config.seq_len)))
    if update == early_updates:
        early_weights = copy.deepcopy(agent.state_dict())
    if update % max(1, updates // 10) == 0 or update == updates:
        m = {k: v.item() for k, v in log[-1].items()}
        print(f"update {update:5d} | image {m['image_loss']:9.1f} | reward {m['reward_loss']:.3f} | "
              f"kl {m['kl']:.2f} | prior std {m['prior_std']:.3f} | posterior std {m['posterior_std']:.3f}")
history = {k: torch.stack([m[k] for m in log]).float().cpu().numpy() for k in log[0]}

# %% [markdown]
# ### Loss curves
#
# We plot the image and reward losses without their constants ($\frac12\ln 2\pi$ per pixel or
# reward), so the curves show $\frac12 \times$ squared error; the KL with its free-nats line.
# Expect the image loss to drop fast (the background and colours are easy) and then slowly (the
# thin pole is a few percent of the pixels). The KL often spikes in the first updates (the
# posterior learns to read the frames faster than the prior learns to predict them), then
# settles near or below 3 nats: below the line the KL term sends no gradient at all (lesson 3),
# and the model is free to put that much information into $z$. In the committed cpu-scale run
# the reward loss also tells a story: flat for about 600 updates, then down by more than ten
# times. Pendulum's reward is a function of the pole's angle, so the reward head can predict it
# only once the state holds that angle, the same detail the image loss pays for last (section 7
# shows the model's frames after 400 and after 1200 updates).

# %%
def smooth(x, width=max(1, updates // 50)):
    return np.convolve(x, np.ones(width) / width, mode="valid") if len(x) > width else x


constant = 0.5 * np.log(2 * np.pi)
fig, axes = plt.subplots(1, 3, figsize=(13, 3.2))
axes[0].plot(smooth(history["image_loss"] - constant * 64 * 64 * 3))
axes[0].set(title="image: -log p(o|s) - const", yscale="log", xlabel="update")
axes[1].plot(smooth(history["reward_loss"] - constant))
axes[1].set(title=f"reward: -log p(r|s) - const (rewards x {config.reward_scale})", yscale="log", xlabel="update")
axes[2].plot(smooth(history["kl"]), label="mean KL (logged, unclamped)")
axes[2].axhline(config.free_nats, color="k", ls="--", lw=1, label=f"free nats = {config.free_nats}")
axes[2].set(title="KL(posterior || prior)", xlabel="update")
axes[2].legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 5. Reconstructions
#
# First the easy test: filter a sequence with the posterior and decode every state. The
# posterior sees each frame, so this measures the encoder → $z$ → decoder path (an autoencoder),
# not yet the dynamics. Whatever is missing here cannot appear in the predictions either.

# %%
sample = buffer.sample(6, config.seq_len)
with torch.no_grad():
    images, actions, _, _ = agent.to_batch(sample)
    start = agent.rssm.get_initial_state(images.shape[1], agent.device)
    posterior, _ = agent.rssm.rollout_observation(agent.encoder(preprocess(images)), actions, start)
    recon = to_uint8(agent.decoder(posterior.features))
t = min(6, config.seq_len - 1)
rows = np.concatenate([viz.filmstrip(images[t].cpu()), viz.filmstrip(recon[t].cpu())])
plt.figure(figsize=(9, 3.2))
plt.imshow(rows)
plt.yticks([32, 96], ["truth", "reconstruction"])
plt.xticks([])
plt.title(f"six sequences at step {t}: real frames and the decoded posterior", fontsize=9)
plt.show()

# %% [markdown]
# ## 6. Open-loop prediction
#
# The real test: can the model predict? The official code's `openl` summary does this:
#
# 1. filter the first `context` = 5 frames with the posterior (`rollout_observation` on
#    `images[:5]` and `actions[:5]`, from the initial state), and decode them;
# 2. from the **last** posterior state, run the prior alone with the real actions that follow,
#    `actions[5:]` (`rollout_prior`): no more frames;
# 3. decode the prior states and put the two parts together: $T$ frames in all.
#
# Recall the pairing from lesson 3: `actions[t]` is $a_{t-1}$, the action that leads into
# frame $t$, so the prior step that predicts frame 5 takes `actions[5]`.
#
# **Exercise 4.2.** *(★★☆, ~20 min)* Write `open_loop(agent, images, actions, context)`: images
# `(T, B, 64, 64, 3)` uint8 and actions `(T, B, A)` on the agent's device → model frames
# `(T, B, 64, 64, 3)` uint8 (`to_uint8` of the decoder's output). The check compares with
# `agent.open_loop` under the same torch seed, so sample in the same order: observe first, then
# imagine.

# %%
@torch.no_grad()
def open_loop(agent, images, actions, context=5):
    """Filter `context` frames with the posterior, then predict the rest with the prior."""
    # BEGIN SOLUTION 4.2: rollout_observation of the context, rollout_prior from its last state with actions[context:], decode both parts
    rssm = agent.rssm
    start = rssm.get_initial_state(images.shape[1], agent.device)
    embed = agent.encoder(preprocess(images[:context]))
    posterior, _ = rssm.rollout_observation(embed, actions[:context], start)
    prior = rssm.rollout_prior(actions[context:], posterior.at(-1))  # from the last posterior state
    frames = torch.cat([agent.decoder(posterior.features), agent.decoder(prior.features)])
    return to_uint8(frames)
    # END SOLUTION


# %%
check_open_loop(open_loop)

# %% [markdown]
# ## 7. The picture: five frames seen, the rest imagined
#
# Fresh episodes the model never trained on, 50 steps each (the official summary's length).
# Rows: the real frames, the model's frames, and the error $(\text{model} - \text{truth} + 1)/2$,
# where grey means no error (cyan: a real pole the model did not draw; red: a pole the model
# drew where there is none). The strip shows every 5th step: the blue "obs" column is a
# reconstruction (the posterior saw frames 0-4); every column from t=5 on is imagined by the
# prior from the actions alone.

# %%
length = min(50, config.time_limit // config.action_repeat if config.time_limit else 50)
test_env = make_env(config.env, config.action_repeat, config.time_limit, seed=config.seed + 100)
test_episodes = [run_episode(test_env) for _ in range(3)]
truth = torch.as_tensor(np.stack([e["image"][:length] for e in test_episodes], 1), device=agent.device)
actions = torch.as_tensor(np.stack([e["action"][:length] for e in test_episodes], 1), device=agent.device)
torch.manual_seed(0)
model = open_loop(agent, truth, actions, context=5)
print("truth", tuple(truth.shape), "model", tuple(model.shape))
fig = viz.openl_strip(truth.cpu(), model.cpu(), context=5, every=5, note=f"after {updates} updates")
plt.show()

# %% [markdown]
# The same sequences, predicted by the weights kept after a third of the training:

# %%
early_agent = DreamerV1(config, action_size=env.action_space.shape[0], device=scale.device)
early_agent.load_state_dict(early_weights)
torch.manual_seed(0)
early_model = open_loop(early_agent, truth, actions, context=5)
fig = viz.openl_strip(truth.cpu(), early_model.cpu(), context=5, every=5, note=f"after {early_updates} updates")
plt.show()


def imagined_error(frames):
    """Mean squared error of the imagined frames (t >= 5) against the truth, pixel values in [0, 1]."""
    return ((frames[5:].float() - truth[5:].float()) / 255).pow(2).mean().item()


print(f"imagined frames, mean squared error per pixel value: after {early_updates} updates "
      f"{imagined_error(early_model):.5f}, after {updates} updates {imagined_error(model):.5f}")

# %% [markdown]
# The same three sequences as the official code's animated summary (one frame per step,
# sequences side by side, an animated GIF that plays on its own):

# %%
HTML(pictures.animation_html(viz.openl_frames(truth.cpu(), model.cpu()), fps=10, scale=2))

# %% [markdown]
# Reading the picture (check the scale in the first output):
#
# - **gpu scale** (paper sizes, 3000 updates): expect the frames just after the context to
#   follow the real pole, and further out the imagined swing to drift out of phase, so that the
#   error row shows a red/cyan pair where the model's pole and the real one disagree. Prediction
#   errors compound: each imagined step starts from an imagined state.
# - **cpu scale** (1200 updates of the small preset): the background, the pivot and a blurred
#   pole are learned; in the observed frame shown (t=0, the reset frame) the pole is a blur
#   that only partly covers the real one, and in the imagined part it keeps swinging but out of
#   phase with the real one, so the error row shows the real pole (cyan) and the model's (red)
#   apart. After 400 updates
#   (the second strip) the model draws the background and a smudge at the pivot and no pole at
#   all, not even in the observed frame: the pole is a few percent of the pixels, so it is the
#   last thing the image loss pays for. The printed errors show why a per-pixel error is a poor
#   judge of a world model: the 400-update model, which draws no pole, scores *better* than the
#   1200-update one, because a pole drawn at the wrong angle is paid twice, where it is missing
#   and where it is drawn.
# - **ci scale**: a tiny model after 3 updates; the strip only proves that the code runs.
#
# Everything the actor learns in lesson 5 is learned inside predictions like the ones right of
# the "obs" column, so their quality bounds the behaviour Dreamer can learn.
#
# ## Summary
#
# - The world-model loss is the image and reward negative log-likelihoods plus the KL with free
#   nats, all computed from the posterior states of real sequences; only the KL trains the prior.
# - One training step: the loss under `agent.autocast()`, `zero_grad`, `backward`, clip to
#   `agent.config.grad_clip`, step the model's own optimiser.
# - The image loss falls fast, then slowly, as the model learns the background before the thin
#   pole; the KL settles near or below the free-nats line.
# - Open-loop prediction: the posterior sees 5 frames, then the prior predicts from the actions
#   alone. At the cpu scale the imagined pole keeps swinging and drifts out of phase with the
#   real one; errors compound with each imagined step.

# %%
print(f"Lesson 4 ran in {scale.elapsed()} at scale {scale.name}")
