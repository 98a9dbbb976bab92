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
# # Lesson 3: The recurrent state-space model (RSSM)
#
# *Time to run:* ci: 13 s, cpu (2 cores): 2 min, gpu: not measured yet (cpu: an Intel Xeon) · Words: the [glossary](GLOSSARY.md).
#
# The encoder of lesson 1 turns one frame into an embedding $e_t$. A frame alone does not say
# how fast the pendulum swings, and a world model that imagines the future must carry a memory.
# Dreamer's memory is the **recurrent state-space model** of PlaNet (Hafner et al. 2019,
# section 3), which "Dream to Control" reuses unchanged for its world model (section 4).
# In this lesson you build it:
#
# - the latent state $s_t = (h_t, z_t)$: a deterministic GRU state $h_t$ (200 numbers) and a
#   stochastic state $z_t$ (30 numbers, a diagonal Gaussian);
# - the **prior** $p(z_t \mid h_t)$, which predicts without looking, and the **posterior**
#   $q(z_t \mid h_t, e_t)$, which also sees the frame;
# - the KL divergence between them, with **free nats** (exercises 3.1 and 3.2);
# - one RSSM step (exercise 3.3), then the two ways of unrolling it: *observe* (filter real
#   frames) and *imagine* (predict with the prior alone).
#
# At the end you train a small model twice, with and without free nats, and see on real Pendulum
# frames which part of the loss trains the prior and what a KL collapse looks like; then your RSSM,
# loaded with the weights of a model trained for a whole run, imagines the pendulum's future.
#
# Where this sits: env → replay buffer → **world model (encoder → RSSM → decoder, reward)** →
# imagination → actor-critic → env. Lesson 4 trains the whole world model; lesson 5 imagines
# with the RSSM's prior to train the actor and critic, and lesson 6 puts it all together.

# %%
from dreamer_lib.course.scale import setup

scale = setup("Lesson 3: the RSSM")

# %% [markdown]
# ## 1. The state: deterministic $h$ and stochastic $z$
#
# PlaNet (section 3) splits the latent state in two, because each half alone fails:
#
# $$
# \begin{aligned}
# \text{deterministic state:}\quad & h_t = f(h_{t-1}, z_{t-1}, a_{t-1}) && \text{(a GRU)}\\
# \text{prior (transition):}\quad & z_t \sim p(z_t \mid h_t)\\
# \text{posterior (representation):}\quad & z_t \sim q(z_t \mid h_t, e_t), \qquad e_t = \mathrm{enc}(o_t)
# \end{aligned}
# $$
#
# A purely stochastic model has to squeeze everything it remembers through noisy samples, so it
# forgets over many steps; a purely deterministic one cannot express that several futures are
# possible. The GRU path $h$ carries memory reliably, the sample $z$ carries what is uncertain.
# The decoder, the reward head, the actor and the critic all read the **features**
# $[z_t, h_t]$ (230 numbers at paper size).
#
# A word on names: the Dreamer paper calls the posterior the *representation model*
# $p_\theta(s_t \mid s_{t-1}, a_{t-1}, o_t)$ and the prior the *transition model*
# $q_\theta(s_t \mid s_{t-1}, a_{t-1})$, the letters the other way round from PlaNet and from
# variational-inference habit. We use $q$ for the posterior and $p$ for the prior throughout, as
# the library does.
#
# The library keeps one state as a named tuple of four tensors: the Gaussian's `mean` and `std`,
# a sample `stoch` ($z_t$) and `deter` ($h_t$).

# %%
import inspect

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dreamer_lib.rssm import RSSMState, stack_states

print(inspect.getsource(RSSMState))
config = scale.config
print(f"this scale's sizes: deter (h) {config.deter_size}, stoch (z) {config.stoch_size}, "
      f"hidden {config.hidden_size}, min_std {config.min_std}")

# %% [markdown]
# ## 2. Time-major sequences, and which action goes with which frame
#
# Every sequence in the library is **time-major**: `(T, B, ...)`, time first, so that a loop
# over time indexes `x[t]` and gets a whole batch. The replay buffer stores an episode with one
# row per step, the reset step included, and row $t$ holds
#
# - `image[t]` $= o_t$,
# - `action[t]` $= a_{t-1}$, the action that *led to* $o_t$ (zeros at the reset row),
# - `reward[t]` $= r_t$, received on arriving at $o_t$ (0 at the reset row).
#
# So `actions[t]` pairs with `embeds[t]`: the RSSM step for time $t$ takes $h_{t-1}, z_{t-1}$
# and $a_{t-1}$ = `actions[t]` to predict $h_t$ and the prior, then corrects with $e_t$. This is
# the official code's convention too (its `observe(embed, action)` zips the two sequences).

# %%
# NBVAL_CHECK_OUTPUT
from dreamer_lib.buffer import ReplayBuffer
from dreamer_lib.envs import make_env, run_episode

env = make_env("pendulum", action_repeat=2, time_limit=200, seed=0)  # 200 env frames = 100 agent steps
episode = run_episode(env)  # random actions
for key, value in episode.items():
    print(f"episode[{key!r}]: {value.shape} {value.dtype}")
print("\n t | action[t] = a_(t-1) | reward[t] = r_t")
for t in range(3):
    print(f" {t} | {episode['action'][t, 0]:+.3f}              | {episode['reward'][t]:+.3f}")

buffer = ReplayBuffer(capacity=10_000, seed=0)
buffer.add_episode(episode)
batch = buffer.sample(batch_size=4, seq_len=10)
print("\na sampled batch, time-major:", {k: v.shape for k, v in batch.items()})

# %% [markdown]
# ## 3. A Gaussian you can backpropagate through
#
# The prior and the posterior each end in a layer with $2 \times$ `stoch` outputs, split into a
# mean and a raw std. As the official code, the std is made positive with a softplus and kept
# away from zero by a floor of 0.1 (the paper does not mention it):
#
# $$\sigma = \operatorname{softplus}(x) + 0.1 .$$
#
# The floor stops either distribution from collapsing to a point, where the KL and its gradient
# would blow up. To sample, we use the **reparameterisation trick** (Kingma & Welling 2014):
#
# $$z = \mu + \sigma \odot \varepsilon, \qquad \varepsilon \sim \mathcal{N}(0, I).$$
#
# The randomness sits in $\varepsilon$, which does not depend on the parameters, so $z$ is a
# differentiable function of $\mu$ and $\sigma$: $\partial z / \partial \mu = 1$ and
# $\partial z / \partial \sigma = \varepsilon$. Dreamer needs this twice: the reconstruction
# loss trains the posterior through its samples, and the actor (lesson 5) learns by
# backpropagating returns through imagined prior samples. `torch.distributions.Normal.sample()`
# would cut that path; `.rsample()` is the same trick.

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(0)
mean = torch.tensor([0.5, -1.0], requires_grad=True)
raw_std = torch.tensor([0.0, 2.0], requires_grad=True)
std = F.softplus(raw_std) + 0.1
noise = torch.randn(2)
z = mean + std * noise  # the reparameterised sample
z.sum().backward()
show = lambda x: [round(v, 4) for v in x.tolist()]  # noqa: E731
print("std              ", show(std))
print("noise            ", show(noise))
print("z                ", show(z))
print("dz/d mean        ", show(mean.grad), " (= 1)")
print("dz/d raw_std     ", show(raw_std.grad), " (= noise * sigmoid(raw_std))")
print("Normal(mean, std).sample() has a gradient path:",
      torch.distributions.Normal(mean, std).sample().requires_grad)

# %% [markdown]
# ## 4. The objective, and the KL between prior and posterior
#
# The world model is trained as a sequential variational autoencoder, with the states $s_{1:T}$ as
# its latent code. Its objective (Dreamer section 4, eq. 10; PlaNet section 3), in this course's
# letters, sums over the steps of a sequence:
#
# $$\mathcal{J} = \sum_t \mathbb{E}_{q}\Big[\underbrace{\ln p(o_t \mid s_t)}_{\text{image}}
#   + \underbrace{\ln p(r_t \mid s_t)}_{\text{reward}}
#   - \beta\, \underbrace{\mathrm{KL}\big(q(s_t \mid s_{t-1}, a_{t-1}, o_t)\,\|\,p(s_t \mid s_{t-1}, a_{t-1})\big)}_{\text{KL}}\Big].$$
#
# With $\beta = 1$ it is the evidence lower bound (ELBO) on the log-likelihood of a sequence's
# frames and rewards given its actions; $\mathbb{E}_q$ samples the states from the posterior as it
# filters the sequence (reparameterised, section 3). The code minimises $-\mathcal{J}$, averaged
# over batch and time.
#
# - **Image**: trains the encoder, posterior, GRU and decoder to keep in $s_t$ what the frame
#   shows. Code: the `image_loss` of section 8 and lesson 4 (lesson 1's `gaussian_log_prob`).
# - **Reward**: trains the reward head, and the state to carry what predicts the reward. Code:
#   `reward_loss` in lesson 4 (section 8 here leaves it out).
# - **KL**: the only term that reaches the prior's head; it trains the prior to predict what the
#   posterior infers. Code: your `kl_divergence` (exercise 3.1) inside `kl_loss` (exercise 3.2),
#   which clamps its mean at the free nats (section 5); $\beta$ is `kl_scale` = 1.

# %% [markdown]
# Both distributions share the deterministic $h_t = f(h_{t-1}, z_{t-1}, a_{t-1})$, so the KL
# between them is the KL over $z_t$ alone:
#
# $$\mathrm{KL}\big(q(z_t \mid h_t, e_t)\;\|\;p(z_t \mid h_t)\big).$$
#
# The direction matters: it is the posterior *first*. The gradient of this term pulls the prior
# towards what the posterior saw (so the prior learns to predict, which imagination needs) and
# pulls the posterior towards the prior (so the representation keeps only what the prior can
# anticipate or the reconstruction needs).
#
# For diagonal Gaussians the KL has a closed form. The dimensions are independent, so it is the
# sum over the `stoch` dimensions $i$ of one-dimensional KLs:
#
# $$\mathrm{KL}(q\,\|\,p) = \sum_i \frac{1}{2}\left(\frac{\sigma_{q,i}^2}{\sigma_{p,i}^2}
#   + \frac{(\mu_{q,i} - \mu_{p,i})^2}{\sigma_{p,i}^2} - 1 - \log\frac{\sigma_{q,i}^2}{\sigma_{p,i}^2}\right).$$
#
# Careful: `std` holds standard deviations $\sigma$; the formula wants variances $\sigma^2$.
#
# **Exercise 3.1.** *(★☆☆, ~10 min)* Write `kl_divergence(q, p)` for two `RSSMState`s of shape
# `(..., stoch)`, returning one KL per state, shape `(...)`.

# %%
# @save dreamer_lib.rssm
def kl_divergence(q: RSSMState, p: RSSMState) -> torch.Tensor:
    """KL(q || p) between diagonal Gaussians, summed over the stoch dimensions: (...) per state."""
    # BEGIN SOLUTION 3.1: closed-form KL(q || p) of diagonal Gaussians (q.std, p.std are std devs), summed over the last dim
    var_ratio = (q.std / p.std).pow(2)
    mean_term = ((q.mean - p.mean) / p.std).pow(2)
    return 0.5 * (var_ratio + mean_term - 1 - var_ratio.log()).sum(-1)
    # END SOLUTION


# %%
from dreamer_lib.course.checks.rssm import check_kl_divergence, check_kl_loss, check_rssm_step

check_kl_divergence(kl_divergence)

# %% [markdown]
# ## 5. Free nats
#
# Early in training the decoder is poor, and the cheapest way to lower the loss is to make the
# posterior equal the prior: a KL of zero, and a representation that carries nothing about the
# image. **Free nats** (Kingma et al. 2016, used by PlaNet and Dreamer with 3 nats) make the
# first few nats of KL free: the loss is
#
# $$\mathcal{L}_\mathrm{KL} = \max\Big(\overline{\mathrm{KL}},\ 3\Big),$$
#
# where, as in the official TF2 code (`tf.maximum(tf.reduce_mean(kl), free_nats)`),
# $\overline{\mathrm{KL}}$ is the KL **averaged over batch and time first**, then clamped.
#
# **Exercise 3.2.** *(★☆☆, ~5 min)* Write `kl_loss(posterior, prior, free_nats)` returning two
# values: the clamped loss to optimise, and the *unclamped* mean KL to log (a clamped value would
# always read 3.0 and hide what the model does below the line). Call
# `kl_divergence(posterior, prior)`, the posterior first, and clamp the **mean**, not each element
# (the TF1 form shown below the check is only for comparison).

# %%
# @save dreamer_lib.rssm
def kl_loss(posterior: RSSMState, prior: RSSMState, free_nats: float = 3.0):
    """max(mean KL(posterior || prior), free_nats), and the unclamped mean KL for logging.

    As the official TF2 code: free nats clamp the KL averaged over batch and time, so once the
    average drops below 3 nats the KL term gives no gradient at all (the TF1 code clamped each
    element instead, which keeps a gradient for the states above the line)."""
    # BEGIN SOLUTION 3.2: average the KL over batch and time, clamp it below at free_nats; return (clamped, raw mean)
    kl = kl_divergence(posterior, prior).mean()
    return torch.clamp(kl, min=free_nats), kl
    # END SOLUTION


# %%
check_kl_loss(kl_loss)


# %% [markdown]
# ### What the clamp does to gradients
#
# `torch.clamp(x, min=3)` has gradient 1 where $x > 3$ and **0** where $x < 3$. Clamping the
# *mean* therefore switches the KL term off entirely while the average KL is below 3 nats: no
# gradient reaches the prior or the posterior from it, even for states whose own KL is large.
# The reconstruction loss alone shapes the representation until the average climbs above 3.
#
# The older TF1 Dreamer/PlaNet code clamped **each element** instead:
# `tf.maximum(0.0, kl - free_nats)` per step and sequence, then the mean. There a state whose
# KL exceeds 3 nats keeps its gradient even when the average is below. Same loss value range,
# different gradients; the next cell shows them side by side on four states with KLs
# 0.5, 0.5, 0.5 and 6 (mean 1.875).

# %% [markdown]
# **Predict before you run.** Four states with KLs 0.5, 0.5, 0.5 and 6 nats, free nats 3. Which
# states get a non-zero gradient from our `kl_loss` (the mean clamped), and which from the TF1 form
# (each element clamped)? What loss value will each form report? Write down your guess, then run
# the next cell.

# %%
# NBVAL_CHECK_OUTPUT
def states_with_kl(kls):
    """A posterior and a prior, unit std, whose means differ in one dim: KL = shift^2 / 2 per state."""
    shift = torch.zeros(len(kls), 4)
    shift[:, 0] = (2 * torch.tensor(kls)).sqrt()
    shift.requires_grad_(True)
    ones, zeros = torch.ones(len(kls), 4), torch.zeros(len(kls), 4)
    return RSSMState(shift, ones, shift, zeros), RSSMState(zeros, ones, zeros, zeros), shift


kls = [0.5, 0.5, 0.5, 6.0]
posterior, prior, shift = states_with_kl(kls)
loss, logged = kl_loss(posterior, prior, free_nats=3.0)
loss.backward()
print(f"per-state KL {kls}, logged mean KL {logged.item():.3f}")
print(f"TF2 / ours: loss {loss.item():.3f}, gradient per state {show(shift.grad[:, 0])}")

posterior, prior, shift = states_with_kl(kls)
tf1 = torch.clamp(kl_divergence(posterior, prior) - 3.0, min=0).mean()  # the TF1 code's form
tf1.backward()
print(f"TF1 (per element): loss {tf1.item():.3f}, gradient per state {show(shift.grad[:, 0])}")

# %% [markdown]
# ### A knob: free nats against the batch's mean KL
#
# `knobs.free_nats_figure` (in `dreamer_lib/course/knobs.py`) calls the library's `kl_loss` (the
# same as yours once the check passes) on a batch of eight posterior/prior pairs whose KLs spread
# around a mean KL you choose. Left: the KL of each state, their mean (black) and the free nats
# (red); the loss is the higher of the two lines. Middle: the gradient norm that reaches each
# state's parameters (the means and stds of $q$ and $p$), filled with these free nats, outlined
# with free nats 0. Right: the batch's gradient norm as the free nats move from 0 to 6.
#
# Three settings, one per row:
#
# - free nats 0, mean KL 2: every state gets a gradient, the more the larger its KL;
# - free nats 3, the same batch: no filled bar is left, not even for the two states whose KL is
#   above 3, because the clamp applies to the mean; the loss reads 3.00 whatever the states do;
# - free nats 3, mean KL 4: each filled bar is exactly its outline, so above the line the clamp
#   changes nothing.
#
# On the right, the gradient norm is a step: all of it while the free nats are below the mean
# KL, exactly zero above.

# %%
from dreamer_lib.course import knobs

figure = knobs.compare(knobs.free_nats_figure, [dict(free_nats=0.0, mean_kl=2.0), dict(free_nats=3.0, mean_kl=2.0),
                                                dict(free_nats=3.0, mean_kl=4.0)])
plt.show()

# %% [markdown]
# With a live kernel, move the two sliders. Try: free nats just below and just above the mean KL;
# a large mean KL with free nats 6. Watch the middle panel: the filled bars are all there or all
# gone, never some of them.

# %%
knobs.free_nats_widget()

# %% [markdown]
# ## 6. One RSSM step: prior and posterior
#
# The network, as the official code's `RSSM` (`img_step` / `obs_step`), all layers of width
# `hidden` (200) with ELU:
#
# ```
# prior step     x   = elu(input_layer([z_{t-1}, a_{t-1}]))
#                h_t = GRUCell(x, h_{t-1})
#                (mu, sigma) = prior_stats(elu(prior_hidden(h_t)))             -> z_t ~ p(z_t | h_t)
# posterior step (mu, sigma) = posterior_stats(elu(posterior_hidden([h_t, e_t]))) -> z_t ~ q(z_t | h_t, e_t)
# ```
#
# The posterior reuses the prior step's $h_t$: an observation changes only $z_t$; it reaches
# $h_{t+1}$ through $z_t$. Both heads go through the same `_distribution`: split, softplus +
# `min_std`, reparameterised sample (a diagonal Gaussian; DreamerV2 swaps in categoricals here).
#
# **Exercise 3.3.** *(★★★, ~30 min)* Fill in `_distribution`, `prior` and `posterior` below. The rest of
# the class is given: `obs_step` = prior then posterior; `rollout_observation` loops `obs_step` over
# a sequence (section 7); `rollout_imagination` and `rollout_prior` loop `prior` alone.

# %%
# @save dreamer_lib.rssm
class RSSM(nn.Module):
    def __init__(self, action_size: int, embed_size: int, stoch_size: int = 30, deter_size: int = 200,
                 hidden_size: int = 200, min_std: float = 0.1):
        super().__init__()
        self.stoch_size, self.deter_size, self.min_std = stoch_size, deter_size, min_std
        self.feature_size = stoch_size + deter_size
        self.input_layer = nn.Linear(stoch_size + action_size, hidden_size)
        self.gru = nn.GRUCell(hidden_size, deter_size)
        self.prior_hidden = nn.Linear(deter_size, hidden_size)
        self.prior_stats = nn.Linear(hidden_size, 2 * stoch_size)
        self.posterior_hidden = nn.Linear(deter_size + embed_size, hidden_size)
        self.posterior_stats = nn.Linear(hidden_size, 2 * stoch_size)

    def get_initial_state(self, batch_size: int, device=None) -> RSSMState:
        zeros = lambda size: torch.zeros(batch_size, size, device=device)  # noqa: E731
        return RSSMState(zeros(self.stoch_size), zeros(self.stoch_size), zeros(self.stoch_size),
                         zeros(self.deter_size))

    def _distribution(self, stats: torch.Tensor, deter: torch.Tensor) -> RSSMState:
        # Distributions stay in fp32 even under bf16 autocast.
        # BEGIN SOLUTION 3.3: split stats (as fp32) into mean and raw std; std = softplus + self.min_std; reparameterised sample
        mean, std = stats.float().chunk(2, -1)
        std = F.softplus(std) + self.min_std
        stoch = mean + std * torch.randn_like(std)  # reparameterisation: gradients reach mean, std
        return RSSMState(mean, std, stoch, deter)
        # END SOLUTION

    def prior(self, prev_state: RSSMState, prev_action: torch.Tensor) -> RSSMState:
        """One imagination step ("img_step"): h_t = GRU(h_{t-1}, [z_{t-1}, a_{t-1}]), z_t ~ p(z_t | h_t)."""
        # BEGIN SOLUTION 3.3: input layer + ELU on [z_{t-1}, a_{t-1}], GRU step (as fp32), then the prior's Gaussian from h_t
        x = F.elu(self.input_layer(torch.cat([prev_state.stoch, prev_action], -1)))
        deter = self.gru(x, prev_state.deter).float()  # (B, deter)
        return self._distribution(self.prior_stats(F.elu(self.prior_hidden(deter))), deter)
        # END SOLUTION

    def posterior(self, prior: RSSMState, embed: torch.Tensor) -> RSSMState:
        """z_t ~ q(z_t | h_t, e_t): same h_t as the prior, but it also sees the observation."""
        # BEGIN SOLUTION 3.3: the posterior's Gaussian from [prior.deter, embed]; its deter is the prior's h_t
        x = F.elu(self.posterior_hidden(torch.cat([prior.deter, embed], -1)))
        return self._distribution(self.posterior_stats(x), prior.deter)
        # END SOLUTION

    def obs_step(self, prev_state: RSSMState, prev_action: torch.Tensor, embed: torch.Tensor):
        prior = self.prior(prev_state, prev_action)
        return self.posterior(prior, embed), prior

    def rollout_observation(self, embeds: torch.Tensor, actions: torch.Tensor, state: RSSMState):
        """Filter a sequence: embeds (T, B, embed), actions (T, B, action) -> posteriors and priors,
        each an RSSMState of (T, B, ...) tensors. Used to train the world model."""
        posteriors, priors = [], []
        for t in range(embeds.shape[0]):
            state, prior = self.obs_step(state, actions[t], embeds[t])
            posteriors.append(state)
            priors.append(prior)
        return stack_states(posteriors), stack_states(priors)

    def rollout_imagination(self, start: RSSMState, actor: nn.Module, horizon: int):
        """Imagine `horizon` steps ahead of each start state with actions from the policy.

        start: (N, ...) states -> (states, actions, policies): the imagined prior states
        (horizon, N, ...), not including the start (as the official code), the actions
        (horizon, N, A), and the list of the policy's distributions they were drawn from, where
        actions[t] ~ policies[t] is the one taken in the state before states[t]. The actor's input
        is detached, so the actor is trained only through the dynamics' gradient of the return
        (section 3), not by moving its own input."""
        state, states, actions, policies = start, [], [], []
        for _ in range(horizon):
            policies.append(actor(state.features.detach()))
            action = policies[-1].rsample()  # (N, A)
            state = self.prior(state, action)
            states.append(state)
            actions.append(action)
        return stack_states(states), torch.stack(actions), policies

    def rollout_prior(self, actions: torch.Tensor, state: RSSMState) -> RSSMState:
        """Open-loop prediction with given actions (T, B, action): the prior alone, no observations."""
        states = []
        for t in range(actions.shape[0]):
            state = self.prior(state, actions[t])
            states.append(state)
        return stack_states(states)


# %%
check_rssm_step(RSSM)

# %% [markdown]
# ## 7. Observe and imagine
#
# The same cell unrolls in two ways.
#
# - **Observe** (`rollout_observation`, the official `observe`): at every step, prior step, then
#   posterior with the frame's embedding; the next step continues from the *posterior* sample.
#   This is filtering, and it is how the world model is trained (lesson 4) and how the agent
#   tracks the real world while acting.
# - **Imagine**: the prior alone, feeding its own samples back. `rollout_prior` takes given
#   actions (open-loop prediction, lesson 4's picture); `rollout_imagination` asks an actor for
#   each action, starting from every posterior state at once (lesson 5).
#
# Shapes at paper size (deter 200, stoch 30, embedding 1024, a 1-D action), for a batch of
# $B = 4$ sequences of $T = 10$ steps and a horizon of $H = 15$:

# %% [markdown]
# **Predict before you run.** `rollout_imagination` starts one imagined trajectory from every
# posterior state of the batch. With $T = 10$, $B = 4$, $H = 15$ and stoch 30, what shape will the
# imagined `stoch` have? Write down your guess, then run the next cell.

# %%
# NBVAL_CHECK_OUTPUT
from dreamer_lib.actor_critic import Actor

torch.manual_seed(0)
T, B, H = 10, 4, 15
cell = RSSM(action_size=1, embed_size=1024)  # paper sizes: stoch 30, deter 200, hidden 200
embeds, actions = torch.randn(T, B, 1024), torch.rand(T, B, 1) * 2 - 1
with torch.no_grad():
    posteriors, priors = cell.rollout_observation(embeds, actions, cell.get_initial_state(B))
    print("observe: posteriors", {k: tuple(v.shape) for k, v in posteriors._asdict().items()})
    print("         priors    ", {k: tuple(v.shape) for k, v in priors._asdict().items()})
    print("         features  ", tuple(posteriors.features.shape), "= [z, h]")
    last = posteriors.at(-1)  # the state after the last observation
    future = cell.rollout_prior(torch.rand(H, B, 1) * 2 - 1, last)
    print("imagine with given actions (rollout_prior):      ", tuple(future.stoch.shape))
    actor = Actor(cell.feature_size, action_size=1)
    start = posteriors.reshape(-1)  # every posterior state starts an imagination: T * B of them
    dreams, dream_actions, _ = cell.rollout_imagination(start, actor, H)
    print("imagine with an actor (rollout_imagination):     ", tuple(dreams.stoch.shape), f"from {T}*{B} starts,",
          "actions", tuple(dream_actions.shape))
    print("parameters of the RSSM:", sum(p.numel() for p in cell.parameters()))

# %% [markdown]
# ## 8. On real frames: what trains the prior
#
# An untrained RSSM's prior and posterior are both about $\mathcal{N}(\text{small}, 0.8^2)$
# (softplus(0) + 0.1 ≈ 0.79): neither knows anything. To watch them change, we train briefly
# with a stripped-down version of the world-model loss: image reconstruction plus the KL term
# through your `kl_loss`, no reward head (lesson 4 trains the full model with
# `DreamerV1.world_model_loss`). The encoder and decoder come from lesson 1's library code; the
# RSSM and the KL are yours.
#
# First some data: random-action Pendulum episodes in a replay buffer, and a helper that builds
# a freshly initialised model, so that we can train the same model twice.

# %%
from dreamer_lib.networks import ConvDecoder, ConvEncoder, gaussian_log_prob, preprocess, to_uint8

device = scale.device
data = ReplayBuffer(capacity=config.replay_capacity, seed=0)
collect_env = make_env(config.env, config.action_repeat, config.time_limit, seed=1)
for _ in range(scale.pick(gpu=20, cpu=10, ci=2)):
    data.add_episode(run_episode(collect_env))
print(f"{len(data)} episodes, {data.agent_steps} agent steps")


def make_model(seed: int = 0):
    """Encoder, your RSSM and decoder, initialised from `seed`: the same weights on every call."""
    torch.manual_seed(seed)
    encoder = ConvEncoder(config.cnn_depth).to(device)
    rssm = RSSM(1, encoder.embed_size, config.stoch_size, config.deter_size, config.hidden_size,
                config.min_std).to(device)
    decoder = ConvDecoder(rssm.feature_size, config.cnn_depth).to(device)
    return encoder, rssm, decoder


@torch.no_grad()
def filter_episode(encoder, rssm, decoder, images, actions):
    """Observe one episode (T, 64, 64, 3): per step, the prior's and posterior's mean std, the KL, and
    the decoded posterior (the reconstruction, as uint8 frames) with its mean squared pixel error."""
    images = torch.as_tensor(images, device=device)[:, None]
    actions = torch.as_tensor(actions, device=device)[:, None]
    posterior, prior = rssm.rollout_observation(encoder(preprocess(images)), actions,
                                                rssm.get_initial_state(1, device))
    decoded = decoder(posterior.features)[:, 0]  # (T, 3, 64, 64), pixels in [-0.5, 0.5] like preprocess's
    return dict(prior_std=prior.std.mean(-1)[:, 0].cpu(), posterior_std=posterior.std.mean(-1)[:, 0].cpu(),
                kl=kl_divergence(posterior, prior)[:, 0].cpu(),
                error=(decoded - preprocess(images)[:, 0]).pow(2).mean((1, 2, 3)).cpu(),
                reconstruction=to_uint8(decoded).cpu().numpy())


encoder, rssm, decoder = make_model()
before = filter_episode(encoder, rssm, decoder, episode["image"], episode["action"])
print(f"untrained, along the episode of section 2: mean KL {before['kl'].mean():.3f} nats | "
      f"std of z: prior {before['prior_std'].mean():.3f}, posterior {before['posterior_std'].mean():.3f}")

# %% [markdown]
# ### Which part of the loss trains the prior?
#
# Follow the gradients back to the **prior head**, the two layers `prior_hidden` and
# `prior_stats` that turn $h_t$ into the prior's mean and std. The reconstruction cannot reach
# them: the decoder reads the *posterior's* features, and `rollout_observation` continues each
# step from the *posterior's* sample. The prior's mean and std enter the loss only through the
# KL term. And `kl_loss` returns $\max(\overline{\mathrm{KL}}, \text{free nats})$: in an update
# whose mean KL is below the free nats, the KL term is the constant `free_nats`, its gradient is
# exactly zero (section 5), and the prior head gets no gradient at all. So **the prior learns
# only in the updates whose mean KL is above the free nats.**
#
# To see it, we train the same model twice, from the same initial weights on the same batches:
# with the paper's 3 free nats, and with free nats off (0). For each run the loop counts the
# updates whose mean KL was above the line and the updates in which the prior head's gradient
# was not zero, and measures how far the prior head's weights moved (the norm of their change).

# %%
PRIOR_HEAD = ("prior_hidden", "prior_stats")  # the layers that map h_t to the prior's mean and std


def prior_head(rssm):
    return [p for name in PRIOR_HEAD for p in getattr(rssm, name).parameters()]


def train(free_nats: float, updates: int, seed: int = 0):
    """Train a fresh model `updates` steps with image loss + kl_loss(..., free_nats); log per update."""
    encoder, rssm, decoder = make_model(seed)
    params = [*encoder.parameters(), *rssm.parameters(), *decoder.parameters()]
    optimizer = torch.optim.Adam(params, lr=config.model_lr, eps=config.adam_eps)
    start_weights = torch.cat([p.detach().flatten() for p in prior_head(rssm)]).clone()
    rng = np.random.default_rng(seed)  # every run samples the same batches
    log = dict(image_loss=[], kl=[], prior_grad=[])
    for step in range(updates):
        batch = data.sample(config.batch_size, config.seq_len, rng=rng)
        images = torch.as_tensor(batch["image"], device=device)
        actions = torch.as_tensor(batch["action"], device=device)
        obs = preprocess(images)  # (T, B, 3, 64, 64)
        posterior, prior = rssm.rollout_observation(encoder(obs), actions,
                                                    rssm.get_initial_state(images.shape[1], device))
        image_loss = -gaussian_log_prob(decoder(posterior.features), obs, event_dims=3).mean()
        kl_clamped, kl = kl_loss(posterior, prior, free_nats)
        loss = image_loss + config.kl_scale * kl_clamped
        optimizer.zero_grad()
        loss.backward()
        grads = [p.grad.flatten() for p in prior_head(rssm) if p.grad is not None]
        log["prior_grad"].append(float(torch.cat(grads).norm()) if grads else 0.0)
        nn.utils.clip_grad_norm_(params, config.grad_clip)
        optimizer.step()
        log["image_loss"].append(image_loss.item())
        log["kl"].append(kl.item())
    moved = float((torch.cat([p.detach().flatten() for p in prior_head(rssm)]) - start_weights).norm())
    return (encoder, rssm, decoder), {k: np.array(v) for k, v in log.items()}, moved, float(start_weights.norm())


updates = scale.pick(gpu=1000, cpu=400, ci=2)
runs = {}
for free_nats in (config.free_nats, 0.0):
    model, log, moved, size = train(free_nats, updates)
    above, pushed = log["kl"] > free_nats, log["prior_grad"] > 0
    after = filter_episode(*model, episode["image"], episode["action"])
    runs[free_nats] = dict(model=model, log=log, after=after)
    print(f"free nats {free_nats:g}: image loss {log['image_loss'][0]:.0f} -> {log['image_loss'][-1]:.0f} | "
          f"mean KL over the {updates} updates {log['kl'].mean():.3f} nats (first {log['kl'][0]:.3f}, "
          f"max {log['kl'].max():.3f}, mean of the last {min(50, updates)} {log['kl'][-50:].mean():.3f})\n"
          f"    mean KL above the free nats in {above.sum()} of {updates} updates; prior head gradient not zero in "
          f"{pushed.sum()} of {updates} (the same updates: {bool((above == pushed).all())})\n"
          f"    prior head weights moved by {moved:.4f} (their norm at the start: {size:.2f})\n"
          f"    along the episode after training: mean KL {after['kl'].mean():.3f} nats | std of z: prior "
          f"{after['prior_std'].mean():.3f}, posterior {after['posterior_std'].mean():.3f} | pixel error of the "
          f"reconstructions {after['error'].mean():.4f}")

# %% [markdown]
# Read the two runs against the rule above:
#
# - In each run, the updates with a non-zero gradient for the prior head are exactly the updates
#   whose mean KL was above that run's free nats (the printed `the same updates`). With free nats
#   0 that is every update. With 3 free nats it is only the updates where the mean KL rose above
#   3 nats; if there were none, the prior head's weights have not moved at all (a moved distance
#   of 0: Adam's step is zero while all the gradients it has seen are zero). After a single
#   update above the line they do move, and keep moving for a few more updates on Adam's momentum.
# - Free nats 0 trains the prior at every update, but the same KL term also pulls the posterior
#   towards the prior at every update. Early in training the decoder is poor, and section 5's
#   shortcut is open: a posterior that gives up the frame's information makes the KL term small
#   at once. Compare the mean KL of the last 50 updates and, along the episode, the KL and the
#   posterior's std against the prior's: in the committed cpu-scale run, free nats 0 ends with a
#   KL of 0.011 nats per step along the episode and a posterior std of 0.560 against the prior's
#   0.562. That is **KL collapse**: the posterior has become the prior, and $z$ carries next to
#   nothing about the frame. With 3 free nats the KL stays at 2.5 nats per step (posterior std
#   0.702, prior 0.857): the first 3 nats cost nothing, so there is nothing to gain by giving them
#   up.

# The picture below: the std of the prior and the posterior along the real episode of section 2,
# and the KL per step, untrained and after each run.

# %%
kl_top = 1.15 * max(config.free_nats, float(before["kl"].max()), *(float(r["after"]["kl"].max()) for r in runs.values()))
columns = [("untrained", before, None)] + [(f"free nats {f:g}, {updates} updates", r["after"], f) for f, r in runs.items()]
fig, axes = plt.subplots(2, 3, figsize=(13, 5.5), sharex=True)
for column, (title, trace, free_nats) in enumerate(columns):
    steps = np.arange(len(trace["kl"]))
    axes[0, column].plot(steps, trace["prior_std"], label="prior p(z|h)")
    axes[0, column].plot(steps, trace["posterior_std"], label="posterior q(z|h,e)")
    axes[0, column].set_title(f"{title}\nstd of z (mean over dims)", fontsize=10)
    axes[0, column].set_ylim(0, 1.2)
    axes[1, column].plot(steps, trace["kl"], color="C2", label="KL(q || p) per step")
    if free_nats:
        axes[1, column].axhline(free_nats, color="k", ls="--", lw=1, label="free nats (apply to the mean)")
    axes[1, column].set_ylim(0, kl_top)
    axes[1, column].set_xlabel("time step of the real episode")
    axes[1, column].set_title("KL(posterior || prior) per step", fontsize=10)
axes[0, 0].legend(fontsize=9)
axes[1, 1].legend(fontsize=9)
fig.tight_layout()
plt.show()

# %% [markdown]
# What to look for, with the printed numbers next to it:
#
# - **Untrained**, prior and posterior stds sit together near 0.79 and the KL is small: the
#   posterior does not use the frame yet.
# - **Free nats 3**: compare the two stds with the untrained column. A posterior narrower than
#   the prior is surer than the prior, by the KL per step, in nats. The prior's std can change
#   even in a run in which its head's weights did not move: its input $h_t$ changes, because the
#   GRU learns from the reconstruction.
# - **Free nats 0**: a KL near zero does not by itself mean a good prior: check the stds. Equal
#   stds and a KL near zero mean the posterior was pulled onto the prior.

# %% [markdown]
# Did the collapse cost the reconstructions anything yet? The real frames of the same episode,
# then each run's reconstruction (the decoder reading the posterior state), with its pixel error.

# %%
steps = np.arange(0, len(episode["image"]), 10)
rows = [("real", episode["image"], None)] + [(f"free nats {f:g}", r["after"]["reconstruction"], r["after"]["error"])
                                             for f, r in runs.items()]
fig, axes = plt.subplots(len(rows), len(steps), figsize=(1.15 * len(steps), 1.3 * len(rows)))
for row, (name, frames, error) in enumerate(rows):
    for column, t in enumerate(steps):
        ax = axes[row, column]
        ax.imshow(frames[t])
        ax.set_xticks([])
        ax.set_yticks([])
        if row == 0:
            ax.set_title(f"step {t}", fontsize=9)
        elif error is not None:
            ax.set_xlabel(f"{float(error[t]):.4f}", fontsize=8)
    axes[row, 0].set_ylabel(name, fontsize=9)
fig.suptitle("the episode of section 2, and each run's reconstruction from its posterior "
             "(under each frame: its mean squared pixel error, pixels in [0, 1])", fontsize=10)
fig.tight_layout()
plt.show()

# %% [markdown]
# Not yet: after 400 updates neither run's decoder draws the pendulum. Both reconstructions are
# the same faint blur at the centre, the average frame, with pixel errors of 0.0034 (free nats 3)
# and 0.0031 (free nats 0) along the episode. This is the moment section 5 warned about: the
# decoder is still poor, and without free nats the posterior gave up its information before the
# reconstruction could use it. The free nats keep those nats available while the decoder learns;
# lesson 4 trains the whole world model long enough to draw the pendulum.

# %% [markdown]
# ### Imagining with the trained priors
#
# From the posterior state after 10 observed frames, copied 64 times, each run's prior is rolled
# forward with the episode's real actions (`rollout_prior`); each copy draws its own samples.
# Top: one dimension of $z$ for 8 of the trajectories, and in black the posterior, which keeps
# seeing the frames. Bottom: how far the 64 trajectories spread apart (std across them, mean
# over dims).

# %%
context, horizon, samples, drawn = 10, 40, 64, 8
fig, axes = plt.subplots(2, 2, figsize=(11, 5.5), sharex=True)
for column, (free_nats, run) in enumerate(runs.items()):
    encoder, rssm, _ = run["model"]
    with torch.no_grad():
        images = torch.as_tensor(episode["image"], device=device)[:, None]
        actions = torch.as_tensor(episode["action"], device=device)[:, None]
        posterior, _ = rssm.rollout_observation(encoder(preprocess(images)), actions,
                                                rssm.get_initial_state(1, device))
        start = RSSMState(*(x[context - 1].expand(samples, -1) for x in posterior))
        imagined = rssm.rollout_prior(actions[context:context + horizon].expand(-1, samples, -1), start)
    dim = int(posterior.std[:context].mean((0, 1)).argmin())  # the dim the posterior is surest about
    z_spread, h_spread = imagined.stoch.std(1).mean(-1).cpu(), imagined.deter.std(1).mean(-1).cpu()
    print(f"free nats {free_nats:g}: first imagined step: spread of z {z_spread[0]:.3f} (the prior's std there "
          f"{imagined.std[0].mean():.3f}), spread of h {h_spread[0]:.3f} | after {horizon} steps: "
          f"spread of z {z_spread[-1]:.3f}, of h {h_spread[-1]:.3f}")
    ahead = np.arange(context, context + horizon)
    ax = axes[0, column]
    ax.plot(ahead, imagined.stoch[:, :drawn, dim].cpu(), color="C1", alpha=0.6, lw=1)
    ax.plot(np.arange(context + horizon), posterior.stoch[:context + horizon, 0, dim].cpu(), color="k", lw=1.5,
            label="posterior sample (observes)")
    ax.axvline(context - 0.5, color="C0", ls=":", label="the prior stops observing")
    ax.set_title(f"free nats {free_nats:g}: z[{dim}], {drawn} imagined trajectories", fontsize=10)
    ax.legend(fontsize=9)
    ax = axes[1, column]
    ax.plot(ahead, z_spread, label="z (sample)")
    ax.plot(ahead, h_spread, label="h (deterministic)")
    ax.set_title("spread across the imagined trajectories", fontsize=10)
    ax.set_xlabel("time step")
    ax.legend(fontsize=9)
fig.tight_layout()
plt.show()

# %% [markdown]
# The imagined trajectories start from one state, yet their $z$ differ at once, by about the
# prior's std (compare the two printed numbers of the first step): each step draws fresh noise. The
# deterministic $h$ starts identical (spread 0), differs a little after the first step, when each
# trajectory has fed its own sample into the GRU, and then stays at that level for 40 steps
# (0.027 with free nats 3, 0.019 with free nats 0, against 0.84 and 0.57 for $z$): after 400
# updates the GRU's state reacts little to which sample it got, so the imagined futures differ
# mostly by $z$'s fresh noise, not by diverging memories.
# Lesson 4 trains the whole world model much longer and looks at the same thing in pixels, with
# the open-loop prediction strip.
#
# ### Imagining with a trained world model
#
# A world model trained for a whole run is another matter. `scale.trained_run()` finds one:
# your lesson 6 run once you have made it, else the model that ships with the course,
# `pretrained("pendulum-cpu")` (a run of the `cpu` preset; how it was trained and what it can do
# is in the `CARD.md` of its folder). We load its trained weights into **your** `RSSM` class and
# repeat the experiment above on one of the run's last episodes, the trained policy swinging the
# pendulum up: 10 observed frames, then 64 imagined copies with the episode's real actions. The
# run's decoder turns each imagined state into a frame, so we can also measure each copy's pixel
# error against the real frames.
#
# **Predict before you run.** Above, after 400 updates, $h$'s spread across the copies stayed
# flat after its first step. In a trained model, will it stay flat, or grow with the steps
# imagined? And the pixel error of the imagined frames?

# %%
from dreamer_lib.course.pretrained import pretrained
from dreamer_lib.course.scale import trained_run
from dreamer_lib.evaluate import load_agent

folder = trained_run() or pretrained("pendulum-cpu")  # pretrained() says what to do if no model ships
agent, _, checkpoint = load_agent(folder, device=device.type)
c = agent.config
trained = RSSM(agent.action_size, agent.encoder.embed_size, c.stoch_size, c.deter_size, c.hidden_size,
               c.min_std).to(device)
trained.load_state_dict(agent.rssm.state_dict())  # your class, the run's weights
replayed = ReplayBuffer(folder / "episodes", capacity=10**9)
replayed.load()
swing = list(replayed.episodes)[-1]
print(f"{folder.name}: {checkpoint['env_frames']} env frames of training; its last stored episode's return "
      f"{swing['reward'].sum():.0f}")

with torch.no_grad():
    images = torch.as_tensor(swing["image"], device=device)[:, None]
    actions = torch.as_tensor(swing["action"], device=device)[:, None]
    posterior, _ = trained.rollout_observation(agent.encoder(preprocess(images)), actions,
                                               trained.get_initial_state(1, device))
    start = RSSMState(*(x[context - 1].expand(samples, -1) for x in posterior))
    imagined = trained.rollout_prior(actions[context:context + horizon].expand(-1, samples, -1), start)
    frames = agent.decoder(imagined.features)  # (horizon, samples, 3, 64, 64), pixels in [-0.5, 0.5]
    pixel_error = (frames - preprocess(images[context:context + horizon])).pow(2).mean((-3, -2, -1))
z_spread, h_spread = imagined.stoch.std(1).mean(-1).cpu(), imagined.deter.std(1).mean(-1).cpu()
shown_steps = [0, 4, 9, 19, 29, horizon - 1]
print("imagined step:         " + "".join(f"{k + 1:>8}" for k in shown_steps))
for name, row, digits in (("spread of h", h_spread, 3), ("spread of z", z_spread, 3),
                          ("pixel error (mean)", pixel_error.mean(1).cpu(), 4)):
    print(f"{name:<22} " + "".join(f"{float(row[k]):8.{digits}f}" for k in shown_steps))

# %%
columns, copies = list(range(0, horizon, 4)), 3
fig = plt.figure(figsize=(12, 6.6))
grid = fig.add_gridspec(2, 1, height_ratios=[1 + copies, 1.6], hspace=0.35)
strips = grid[0].subgridspec(1 + copies, len(columns), wspace=0.04, hspace=0.06)
for column, k in enumerate(columns):
    rows = [swing["image"][context + k]] + [
        to_uint8(frames[k, n]).cpu().numpy() for n in range(copies)]
    for row, frame in enumerate(rows):
        ax = fig.add_subplot(strips[row, column])
        ax.imshow(frame)
        ax.set_xticks([])
        ax.set_yticks([])
        if row == 0:
            ax.set_title(f"step {context + k}", fontsize=9)
        if column == 0:
            ax.set_ylabel("real" if row == 0 else f"imagined {row}", fontsize=9)
plots = grid[1].subgridspec(1, 2, wspace=0.25)
ahead = np.arange(context, context + horizon)
ax = fig.add_subplot(plots[0])
ax.plot(ahead, z_spread, label="z (sample)")
ax.plot(ahead, h_spread, label="h (deterministic)")
ax.set_title(f"spread across the {samples} imagined copies (std, mean over dims)", fontsize=10)
ax.set_xlabel("time step of the episode")
ax.legend(fontsize=9)
ax = fig.add_subplot(plots[1])
error = pixel_error.cpu().numpy()
ax.plot(ahead, error.mean(1), color="k", label=f"mean over the {samples} copies")
ax.fill_between(ahead, *np.percentile(error, [10, 90], axis=1), color="0.8", label="10th-90th percentile")
ax.set_title("pixel error of the imagined frames (mean squared, pixels in [0, 1])", fontsize=10)
ax.set_xlabel("time step of the episode")
ax.legend(fontsize=9)
plt.show()

# %% [markdown]
# Read the strip first. In this episode (collected with exploration noise) the real pendulum
# swings back and forth several times and is up from step 38 on. The three imagined copies start
# where the real one does and follow it for a few steps (at step 14 copies 2 and 3 hang down with
# it, copy 1 is already off); by step 18 each one is on its own course, though all three receive
# the same torques as the real one.
#
# The numbers say the same. $h$'s spread grows from 0 to 0.039 after 5 imagined steps and 0.066
# after 10, then faster, to 0.235 after 20, where the 400-update models' stayed near 0.02. The
# pixel error of the imagined frames grows from 0.0008 at the first step to 0.0038 after 5 steps
# (with a dip to 0.0026 after 10) and stays near 0.0055 from step 25 on (0.0053 after 20 steps,
# 0.0057 after 40), once the copies have spread over the states the pendulum can be in. This is
# **compounding**: a different sample of $z$ changes $h$, the changed $h$ changes the next prior
# and the next sample, and the differences feed on themselves. On Pendulum they grow fast, since a
# pole held at the top is unstable: a small difference in its angle, given the same torques,
# becomes a fall. An imagined rollout is a sample of what may happen, not a forecast, and the
# further it runs, the less it says about the real episode. This is one reason Dreamer's
# imagination horizon is short (15 steps) and the value function covers the rest (lesson 5).
#
# ## Summary
#
# - The latent state is $s_t = (h_t, z_t)$: a deterministic GRU state $h_t$ that carries memory
#   and a stochastic Gaussian $z_t$; the heads read the features $[z_t, h_t]$.
# - The prior $p(z_t \mid h_t)$ predicts without the frame, the posterior $q(z_t \mid h_t, e_t)$
#   also reads it; both draw reparameterised samples, so gradients flow through $z$.
# - The KL term is $\mathrm{KL}(q \,\|\, p)$, posterior first, in closed form for diagonal
#   Gaussians; free nats clamp its mean over batch and time at 3 nats, and below the line it sends
#   no gradient at all (the TF1 per-element form keeps a gradient for large-KL states).
# - The prior head is trained only by the KL term, so it learns only in updates whose mean KL is
#   above the free nats. Without free nats it trains at every update, and the same term pulls the
#   posterior onto the prior: early in training, while the decoder is still poor, the posterior
#   collapsed (a KL of 0.02 nats per step, equal stds). The free nats keep the first 3 nats free.
# - *Observe* runs prior then posterior at each step; *imagine* runs the prior alone, and
#   imagined trajectories from one state differ by the fresh samples of $z$ each step draws. In a
#   trained model the differences compound through $h$: imagined futures leave the real one within
#   about 10 steps on Pendulum, which is why the imagination horizon is short.
#
# Next, lesson 4 trains the whole world model (encoder, RSSM, decoder and reward head together)
# with `DreamerV1.world_model_loss`, and looks at what it predicts open-loop.

# %%
print(f"Lesson 3 ran in {scale.elapsed()} at scale {scale.name}")
