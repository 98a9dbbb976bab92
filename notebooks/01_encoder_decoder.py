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
# # Lesson 1: Encoder and decoder
#
# *Time to run:* ci: 9 s, cpu (2 cores): 30 s, gpu: not measured yet (cpu: an Intel Xeon) · Words: the [glossary](GLOSSARY.md).
#
# The world model touches pixels in exactly two places. The **encoder** turns each frame $o_t$
# into a vector $e_t$ of 1024 features, which the RSSM's posterior $q(z_t \mid h_t, e_t)$ reads
# (lesson 3). The **decoder** turns a latent state $s_t = (h_t, z_t)$ back into a frame: it gives
# the mean of the image likelihood, the *observation model* $p(o_t \mid s_t)$, whose
# log-probability is the reconstruction term of the world-model loss (section 4 of the paper,
# eq. 10; the paper writes it $q(o_t \mid s_t)$, its letters swapped as lesson 3 explains: in
# this course $p$ is the generative model, $q$ the posterior). The paper takes both networks from
# World Models (Ha & Schmidhuber 2018; appendix A).
#
# ```
# env -> buffer -> [ENCODER] -> RSSM -> (h_t, z_t) -> [DECODER] -> image likelihood
#                                          |-> imagination -> actor-critic
# ```
#
# You will write the two `forward` methods (exercises 1.1 and 1.2), count their parameters, see
# why the image loss is a squared error in disguise, and end by training encoder + decoder as an
# autoencoder on random Pendulum frames: the reconstructions show that a 64x64 frame survives a
# squeeze through a vector the size of the RSSM's state.

# %%
from dreamer_lib.course.scale import setup

scale = setup("Lesson 1: encoder and decoder")

# %%
import inspect

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from dreamer_lib import envs
from dreamer_lib.networks import gaussian_log_prob, preprocess, to_uint8

# %% [markdown]
# ## Conv arithmetic
#
# Both networks use convolutions without padding ("VALID" in the official TensorFlow code). A
# convolution with kernel $k$ and stride $s$ maps a side of $n$ pixels to
# $\lfloor (n - k) / s \rfloor + 1$; a transposed convolution maps $n$ to $(n - 1)\,s + k$.
# The encoder uses four 4x4 convolutions of stride 2; the decoder starts from a 1x1 "image" and
# uses transposed convolutions with kernels 5, 5, 6, 6 and stride 2, chosen to land on 64 exactly:

# %%
# NBVAL_CHECK_OUTPUT
def conv_out(n, k, s):
    return (n - k) // s + 1


def deconv_out(n, k, s):
    return (n - 1) * s + k


sizes = [64]
for _ in range(4):
    sizes.append(conv_out(sizes[-1], k=4, s=2))
print("encoder:", " -> ".join(map(str, sizes)), f"pixels; 256 channels x 2 x 2 = {256 * 2 * 2} features at depth 32")
sizes = [1]
for k in (5, 5, 6, 6):
    sizes.append(deconv_out(sizes[-1], k=k, s=2))
print("decoder:", " -> ".join(map(str, sizes)), "pixels")

# %% [markdown]
# Frames are stored as `uint8` (64, 64, 3) to save memory (lesson 2); `preprocess` turns them
# into what the networks take, float (3, 64, 64) in $[-0.5, 0.5]$ (as the official code:
# $x / 255 - 0.5$), on any number of leading dimensions. `to_uint8` goes back, for pictures.

# %%
# NBVAL_CHECK_OUTPUT
env = envs.make_env("pendulum", seed=0)
frame, _ = env.reset(seed=0)
x = preprocess(torch.from_numpy(frame))
print("stored frame:", frame.shape, frame.dtype, "-> network input:", tuple(x.shape), x.dtype,
      f"in [{x.min():.1f}, {x.max():.1f}]")
print("round trip exact:", bool((to_uint8(x).numpy() == frame).all()))

# %% [markdown]
# ## Exercise 1.1: the encoder
#
# *(★☆☆, ~10 min)*
#
# `__init__` is given: four `Conv2d(kernel 4, stride 2)` + ReLU with $1, 2, 4, 8 \times$ `depth`
# channels. Write `forward`. The input has **any number of leading dimensions**: a single
# batch `(B, 3, 64, 64)` when acting, or `(T, B, 3, 64, 64)` when the world model encodes a whole
# batch of sequences at once (time-major, lesson 2). `nn.Conv2d` only takes `(N, C, H, W)`: flatten
# the leading dimensions into one, run the convs, flatten each (256, 2, 2) map into 1024 features,
# and restore the leading dimensions.
#
# **`# @save`.** A cell whose first line is `# @save dreamer_lib.<module>` holds code that is the
# library's, word for word: every class and function in it, reference solution included, is the
# text of `dreamer_lib/<module>.py` (a test, `tests/test_notebooks.py`, checks it). So the cell
# below is exactly the encoder that `dreamer-train` runs; your version replaces it only in this
# notebook.

# %%
# @save dreamer_lib.networks
class ConvEncoder(nn.Module):
    """o_t -> embed_t. Four 4x4 stride-2 convs with ReLU: 64 -> 31 -> 14 -> 6 -> 2 pixels,
    channels depth x (1, 2, 4, 8), so 8 * depth * 2 * 2 = 1024 features at depth 32."""

    def __init__(self, depth: int = 32):
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv2d(3, depth, 4, stride=2), nn.ReLU(),
            nn.Conv2d(depth, 2 * depth, 4, stride=2), nn.ReLU(),
            nn.Conv2d(2 * depth, 4 * depth, 4, stride=2), nn.ReLU(),
            nn.Conv2d(4 * depth, 8 * depth, 4, stride=2), nn.ReLU(),
        )
        self.embed_size = 8 * depth * 2 * 2

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # BEGIN SOLUTION 1.1: flatten the leading dims, run self.convs, return (..., embed_size) features
        batch_shape = images.shape[:-3]
        x = self.convs(images.reshape(-1, *images.shape[-3:]))
        return x.reshape(*batch_shape, self.embed_size)
        # END SOLUTION


# %%
from dreamer_lib.course.checks.networks import check_conv_encoder

check_conv_encoder(ConvEncoder)

# %% [markdown]
# Layer by layer, and on a time-major batch of 5 steps x 2 sequences:

# %%
# NBVAL_CHECK_OUTPUT
encoder = ConvEncoder(depth=32)
h = torch.zeros(1, 3, 64, 64)
for layer in encoder.convs:
    h = layer(h)
    if isinstance(layer, nn.Conv2d):
        print(f"{str(layer):62s} -> {tuple(h.shape)}")
print("(T, B, 3, 64, 64) =", (5, 2, 3, 64, 64), "->", tuple(encoder(torch.zeros(5, 2, 3, 64, 64)).shape))

# %% [markdown]
# ## The decoder, and a transposed conv that is really a Linear
#
# The decoder maps the features $(h_t, z_t)$ (230 numbers with the paper's sizes: deter 200 +
# stoch 30) through a Linear layer to $32 \cdot$ `depth` = 1024 numbers, treats them as a
# 1024-channel image of 1x1 pixel, and grows it with transposed convolutions:
# 1 -> 5 -> 13 -> 30 -> 64 pixels, ReLU between them, no activation at the end (it outputs the
# **mean** of the pixel distribution, which may go anywhere).
#
# Look at the first transposed convolution. Its input is a single pixel, so every output pixel
# $(c, i, j)$ of the 5x5 result is $\sum_k W_{k, c, i, j}\, x_k + b_c$: a linear map from 1024
# inputs to $128 \times 5 \times 5 = 3200$ outputs, plus one bias **per channel** (shared over the
# 25 positions, as a convolution's bias is). The library writes it as exactly that: an
# `nn.Linear(1024, 3200, bias=False)` and a bias parameter of shape (128, 1, 1). Same function,
# same parameter count, but a plain matmul is faster, and `torch.compile` (used on GPUs, lesson 6)
# failed on the backward pass of a 1x1-input `ConvTranspose2d`. Proof of "same function":

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(0)
deconv = nn.ConvTranspose2d(1024, 128, kernel_size=5, stride=2)
linear = nn.Linear(1024, 128 * 5 * 5, bias=False)
with torch.no_grad():
    linear.weight.copy_(deconv.weight.reshape(1024, 128 * 25).T)  # ConvTranspose2d weight: (in, out, 5, 5)
bias = deconv.bias.reshape(128, 1, 1)
x = torch.randn(7, 1024)
as_conv = deconv(x.reshape(7, 1024, 1, 1))
as_linear = linear(x).reshape(7, 128, 5, 5) + bias
print("output shapes:", tuple(as_conv.shape), tuple(as_linear.shape))
print("max difference < 1e-5:", bool((as_conv - as_linear).abs().max() < 1e-5))
print("parameters:", sum(p.numel() for p in deconv.parameters()), "vs", linear.weight.numel() + bias.numel())

# %% [markdown]
# ## Exercise 1.2: the decoder
#
# *(★★☆, ~15 min)*
#
# Write `forward`: flatten the leading dimensions of `features` to one, apply `self.dense` and
# `self.deconv1`, reshape the 3200 numbers to `(N, 4 * depth, 5, 5)`, add `self.deconv1_bias`, ReLU,
# run `self.deconvs`, and restore the leading dimensions in front of `(3, 64, 64)`. Note that
# `self.dense` has no activation after it (as the official code), and there is **no sigmoid at the
# end**: pixels are in $[-0.5, 0.5]$ after `preprocess`, and the output is the unbounded mean of a
# Gaussian, not a pixel value squeezed into a range.

# %%
# @save dreamer_lib.networks
class ConvDecoder(nn.Module):
    """(h_t, z_t) -> mean of a unit-variance Gaussian over the 64x64x3 pixels.

    Dense to 32 * depth, then transposed convs with kernels 5, 5, 6, 6 and stride 2:
    1 -> 5 -> 13 -> 30 -> 64 pixels, channels 4, 2, 1 x depth, then 3.
    The first transposed conv sees a 1x1 input, where it is exactly a linear map to a 5x5 grid
    with one bias per channel; we write it as that linear map (same function, same parameter
    count) because it is faster and torch.compile's backward of a 1x1 ConvTranspose2d fails.
    """

    def __init__(self, feature_size: int, depth: int = 32):
        super().__init__()
        self.depth = depth
        self.dense = nn.Linear(feature_size, 32 * depth)
        self.deconv1 = nn.Linear(32 * depth, 4 * depth * 5 * 5, bias=False)
        self.deconv1_bias = nn.Parameter(torch.zeros(4 * depth, 1, 1))
        self.deconvs = nn.Sequential(
            nn.ConvTranspose2d(4 * depth, 2 * depth, 5, stride=2), nn.ReLU(),
            nn.ConvTranspose2d(2 * depth, depth, 6, stride=2), nn.ReLU(),
            nn.ConvTranspose2d(depth, 3, 6, stride=2),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        # BEGIN SOLUTION 1.2: dense, deconv1 as a Linear + per-channel bias, ReLU, deconvs; keep the leading dims
        batch_shape = features.shape[:-1]
        x = self.deconv1(self.dense(features.reshape(-1, features.shape[-1])))
        x = torch.relu(x.reshape(-1, 4 * self.depth, 5, 5) + self.deconv1_bias)
        return self.deconvs(x).reshape(*batch_shape, 3, 64, 64)
        # END SOLUTION


# %%
from dreamer_lib.course.checks.networks import check_conv_decoder

check_conv_decoder(ConvDecoder)

# %% [markdown]
# Parameter counts at the paper's depth 32 (the cpu preset uses depth 8; the autoencoder below
# prints its count). Most of the decoder sits in the first transposed conv, 1024 x 3200 weights:

# %%
# NBVAL_CHECK_OUTPUT
def count(module):
    return sum(p.numel() for p in module.parameters())


encoder, decoder = ConvEncoder(depth=32), ConvDecoder(feature_size=230, depth=32)
print(f"ConvEncoder(depth=32): {count(encoder):>9,} parameters, embed_size {encoder.embed_size}")
print(f"ConvDecoder(230, 32):  {count(decoder):>9,} parameters")
for name, module in [("  dense", decoder.dense), ("  deconv1 (+ bias)", decoder.deconv1)] + [
        (f"  deconvs[{i}]", m) for i, m in enumerate(decoder.deconvs) if count(m)]:
    extra = decoder.deconv1_bias.numel() if module is decoder.deconv1 else 0
    print(f"{name:20s} {count(module) + extra:>9,}")

# %% [markdown]
# ## The image likelihood
#
# The decoder's output is the mean of a Gaussian with **unit variance** over each of the
# $64 \cdot 64 \cdot 3 = 12{,}288$ pixel values, independent given the state (official code:
# `Independent(Normal(mean, 1), 3)`). Its log-probability is
#
# $$\ln p(o_t \mid s_t) = \sum_{\text{pixels}} \Big(-\tfrac12 (o_t - \mu)^2 - \tfrac12 \ln 2\pi\Big)
#   = -\tfrac12 \lVert o_t - \mu \rVert^2 - 11{,}291.9,$$
#
# so maximising it is minimising half the summed squared error; the constant has no gradient.
# The library keeps it so that the losses read like the official code's. Summing (not averaging)
# over pixels matters: it fixes how much the image term weighs against the reward term (one
# number) and the KL term in the world-model loss (lesson 4).

# %%
print(inspect.getsource(gaussian_log_prob))

# %% [markdown]
# **Predict before you run.** The next cell scores a decoder that outputs mid-grey (0 after
# `preprocess`) for an all-white frame (0.5 everywhere after `preprocess`). By how many nats will
# its log-likelihood fall below that of a perfect reconstruction? Write down your guess, then run
# the next cell.

# %%
# NBVAL_CHECK_OUTPUT
white = torch.full((3, 64, 64), 0.5)  # an all-white frame after preprocess
grey = torch.zeros(3, 64, 64)  # a decoder that outputs mid-grey everywhere
constant = 0.5 * np.log(2 * np.pi) * white.numel()
print(f"the constant: 0.5 * log(2 pi) * {white.numel()} = {constant:.1f} nats")
print(f"perfect reconstruction: {gaussian_log_prob(white, white, event_dims=3):.1f} nats")
print(f"grey for white:         {gaussian_log_prob(grey, white, event_dims=3):.1f} nats"
      f" = -0.5 * {((grey - white) ** 2).sum():.0f} (squared error) - {constant:.1f}")
print("per-pixel values keep the shape:", tuple(gaussian_log_prob(grey, white).shape))

# %% [markdown]
# ## Do they work? An autoencoder on Pendulum frames
#
# Before the RSSM exists we can already test the pair: encoder -> a Linear layer down to the size
# of the RSSM's features ($h$ + $z$: 230 at cpu/gpu scale) -> decoder, trained to maximise the
# image log-likelihood on random-policy frames with the world model's optimiser (Adam, learning
# rate $6 \cdot 10^{-4}$, $\epsilon = 10^{-7}$, gradient norm clipped at 100). If a frame can pass
# through that bottleneck and come back, the pixels side of the world model is sound.
#
# First the data: a few random episodes to train on and one held out to test on.

# %%
config = scale.config
env = envs.make_env(config.env, time_limit=config.time_limit, seed=0)
episodes = [envs.run_episode(env) for _ in range(scale.pick(gpu=10, cpu=5, ci=1) + 1)]
train_frames = torch.from_numpy(np.concatenate([e["image"] for e in episodes[:-1]]))  # (N, 64, 64, 3) uint8
test_frames = torch.from_numpy(episodes[-1]["image"][::10])  # every 10th frame of the held-out episode
print("train frames:", tuple(train_frames.shape), "| test frames:", tuple(test_frames.shape))

# %% [markdown]
# **Initialisation.** The official code ran with Keras' defaults: glorot-uniform weights and zero
# biases. PyTorch's defaults are smaller weights ($\pm 1/\sqrt{\text{fan-in}}$) and random biases,
# which, through four ReLU convs, leave the embedding only weakly dependent on the image. On these
# frames, where the pendulum covers about 2% of the pixels, that can cost time: below we train the
# same autoencoder both ways and compare. The library initialises like the official code, with
# `networks.keras_init` (the `DreamerV1` agent calls it on all its networks):

# %%
from dreamer_lib.networks import keras_init

print(inspect.getsource(keras_init))

# %%
feature_size = config.deter_size + config.stoch_size


def make_autoencoder(keras: bool = True) -> nn.Module:
    torch.manual_seed(0)
    autoencoder = nn.Sequential(ConvEncoder(config.cnn_depth), nn.Linear(8 * config.cnn_depth * 2 * 2, feature_size),
                                ConvDecoder(feature_size, config.cnn_depth))
    return (keras_init(autoencoder) if keras else autoencoder).to(scale.device)


autoencoder = make_autoencoder()
print(f"depth {config.cnn_depth}: {8 * config.cnn_depth * 2 * 2} features -> bottleneck {feature_size}, "
      f"{count(autoencoder):,} parameters")

# %%
def show_reconstructions(frames, title):
    """Top row: the frames; bottom row: the autoencoder's reconstructions."""
    with torch.no_grad():
        means = autoencoder(preprocess(frames.to(scale.device)))
    rows = [frames.numpy(), to_uint8(means).cpu().numpy()]
    fig, axes = plt.subplots(2, len(frames), figsize=(1.1 * len(frames), 2.5), squeeze=False)
    for r, (row, label) in enumerate(zip(rows, ["truth", "reconstruction"])):
        for c, image in enumerate(row):
            axes[r][c].imshow(image)
            axes[r][c].set_xticks([])
            axes[r][c].set_yticks([])
        axes[r][0].set_ylabel(label, fontsize=8)
    fig.suptitle(title, fontsize=9)
    plt.show()


show_reconstructions(test_frames, "held-out frames, before training")

# %% [markdown]
# The untrained decoder outputs a flat grey (its mean starts near 0, i.e. mid-grey after
# `preprocess`). Now train: each step samples a batch of frames, and the loss is the negative
# image log-likelihood, summed over pixels and averaged over the batch, as the world model's
# image loss will be.

# %%
steps = scale.pick(gpu=2000, cpu=1000, ci=3)
batch_size = scale.pick(gpu=50, cpu=32, ci=4)


def train(autoencoder: nn.Module) -> list[float]:
    """`steps` Adam steps on random batches of training frames; the loss of each step."""
    optimizer = torch.optim.Adam(autoencoder.parameters(), lr=config.model_lr, eps=config.adam_eps)
    generator = torch.Generator().manual_seed(0)
    losses = []
    for step in range(steps):
        batch = preprocess(train_frames[torch.randint(len(train_frames), (batch_size,), generator=generator)]
                           .to(scale.device))
        loss = -gaussian_log_prob(autoencoder(batch), batch, event_dims=3).mean()
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(autoencoder.parameters(), config.grad_clip)
        optimizer.step()
        losses.append(loss.item())
    return losses


losses = train(autoencoder)
print(f"{steps} steps of batch {batch_size}: loss {losses[0]:.0f} -> {losses[-1]:.1f} nats per frame, "
      f"{losses[-1] - constant:.1f} above a perfect reconstruction")

# %% [markdown]
# The loss falls fast at first (learning the white background is most of the error) and then
# slowly, as the network learns where the rod is. We plot it minus the constant 11,291.9 nats,
# which leaves half the summed squared error (0 would be a perfect reconstruction), on a log
# scale. The dotted line is the best **constant** guess, the average training frame: once the
# loss is below it, the reconstructions depend on the input. The grey curve is the same
# autoencoder, same batches, with PyTorch's default initialisation instead of Keras'.

# %%
pytorch_losses = train(make_autoencoder(keras=False))
average = preprocess(train_frames).mean(0)
average_loss = -gaussian_log_prob(average, preprocess(train_frames), event_dims=3).mean().item()


def first_below(losses, level, window=20):
    """The first step after which the mean of `window` losses stays below `level` (None: never)."""
    window = min(window, len(losses))
    smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
    above = np.flatnonzero(smooth >= level)
    last = above[-1] + window if len(above) else 0
    return last if last < len(losses) else None


for name, curve in (("Keras init (the library's)", losses), ("PyTorch default init", pytorch_losses)):
    step = first_below(curve, average_loss)
    when = f"from step {step} on" if step is not None else f"not for good within {steps} steps"
    print(f"{name:<27} below the average frame {when} | last loss {curve[-1] - constant:.1f} above perfect "
          f"(average frame: {average_loss - constant:.1f})")
fig, ax = plt.subplots(figsize=(7, 3))
ax.plot(np.arange(1, len(losses) + 1), np.array(losses) - constant, lw=1, label="training loss - constant")
ax.plot(np.arange(1, len(pytorch_losses) + 1), np.array(pytorch_losses) - constant, lw=1, color="0.6",
        label="the same with PyTorch's default init")
ax.axhline(average_loss - constant, color="C3", ls=":", lw=1.5, label="the average frame, whatever the input")
ax.set_yscale("log")
ax.set_xlabel("training step")
ax.set_ylabel("0.5 x squared error per frame")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# In the committed cpu-scale run, with Keras' initialisation the loss goes below the average frame
# for good at step 549 and ends 9.8 nats above perfect; with PyTorch's defaults it is still at the
# average frame's level after 1,000 steps (17.9 against 17.2). Same network, data and optimiser:
# only the initial weights differ. The held-out frames, through the Keras-initialised model:

# %%
show_reconstructions(test_frames, f"held-out frames, after {steps} training steps")

# %% [markdown]
# The reconstructions put the rod at the right angle on frames the network never saw: the
# encoder's features, squeezed into a vector the size of the RSSM's state, carry the
# pendulum's position, and the decoder draws it back. What is missing tells as much: the grey
# torque arc, a faint detail of a few pixels, is mostly gone, because the squared error barely
# notices it. A world model trained this way spends its capacity on what covers many pixels, not
# on what matters for the task, one reason Dreamer also learns to predict rewards from the same
# state. The world model will train these same two networks (with the RSSM in between) on many
# more frames.
#
# What this autoencoder **cannot** do is predict: it has no notion of time or actions, and a single
# frame does not even show which way the pendulum swings. The RSSM of
# [lesson 3](03_rssm.ipynb) puts memory and dynamics between the encoder and the decoder, and the
# [replay buffer](02_replay_buffer.ipynb) of the next lesson feeds it sequences.
#
# ## Summary
#
# - The encoder's four 4x4 stride-2 convolutions (no padding) turn a 64x64x3 frame into 1024
#   features; the decoder's dense layer and transposed convolutions (kernels 5, 5, 6, 6) turn a
#   feature vector back into 64x64x3. Both take any number of leading dimensions.
# - On its 1x1 input the decoder's first transposed convolution is exactly a linear map plus one
#   bias per channel.
# - The image term is the log-likelihood of a unit-variance Gaussian: $-\tfrac12$ the squared
#   error summed over 12,288 pixel values, minus a constant of 11,291.9 nats.
# - Trained as an autoencoder through a bottleneck the size of the RSSM's features, the pair
#   redraws the pendulum's angle on held-out frames and loses the faint torque arc (gpu and cpu
#   scales; the ci scale only proves the code runs). It cannot predict: that is the RSSM's job.

# %%
print(f"Lesson 1 ran in {scale.elapsed()} at scale {scale.name}")
