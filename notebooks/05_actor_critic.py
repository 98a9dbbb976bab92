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
# # Lesson 5: Behaviour learning in imagination
#
# *Time to run:* ci: 16 s, cpu (2 cores): 2.5 min, gpu: not measured yet (cpu: an Intel Xeon) · Words: the [glossary](GLOSSARY.md).
#
# Lessons 3 and 4 built a world model that can predict the future from a latent state without
# looking at the environment. This lesson turns that model into behaviour: Dreamer trains an
# **actor** (the paper's action model $q_\phi(a_\tau \mid s_\tau)$) and a **critic** (the value
# model $v_\psi(s_\tau)$) entirely on trajectories the world model imagines (section 3 of the
# paper). You will build:
#
# - the tanh-Gaussian actor and the critic (read from the library);
# - the $\lambda$-returns of equation 6, first by hand on four steps, then vectorised
#   (exercise 5.1);
# - the discount weights and the actor loss, whose gradient flows *through the learned
#   dynamics* (exercise 5.2, equation 7);
# - the critic loss on detached targets (exercise 5.3, equation 8);
# - one imagination step (exercise 5.4).
#
# At the end you train a small world model on random Pendulum episodes and watch the actor
# imagine futures from *real* starting states, with the predicted reward and value under every
# imagined frame.
#
# Where this sits: env → replay buffer → world model → **imagination → actor-critic** → env.

# %%
from dreamer_lib.course.scale import setup

scale = setup("Lesson 5: actor-critic in imagination")

# %% [markdown]
# ## 1. The actor: a tanh-transformed Gaussian
#
# Pendulum's action is a torque in $[-1, 1]$ (the env wrapper scales the env's own range to
# that). The paper's actor outputs a Gaussian and squashes a sample with tanh:
# $a_\tau = \tanh(\mu_\phi(s_\tau) + \sigma_\phi(s_\tau)\,\epsilon)$, $\epsilon \sim \mathcal N(0, I)$.
# Because the sample is a differentiable function of $\mu$, $\sigma$ and the noise
# (reparameterisation), a gradient of the return with respect to the action reaches the actor's
# weights. Three details come from the official code, not the paper:
#
# - the mean is bounded softly, $\mu = 5\tanh(m/5)$, so it cannot run off to $\pm\infty$;
# - the std is $\mathrm{softplus}(s + \log(e^5 - 1)) + 10^{-4}$: the constant makes a fresh
#   network (raw output $s \approx 0$) start with std $\approx 5$, wide exploration;
# - the *mode* (used for evaluation) is not $\tanh(\mu)$: with a large std, the squashed
#   distribution piles its mass near $\pm 1$, so the code draws 100 samples and keeps the most
#   likely one.

# %%
import inspect

import matplotlib.pyplot as plt
import numpy as np
import torch

from dreamer_lib.actor_critic import Actor, Critic, TanhNormal

print(inspect.getsource(Actor.forward))

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(0)
feature_size, action_size = 230, 1  # paper sizes: [z, h] = 30 + 200 features, Pendulum has one action
actor, critic = Actor(feature_size, action_size, units=400), Critic(feature_size, units=400)
features = torch.randn(7, feature_size)  # 7 latent states
dist = actor(features)
print("actor parameters: ", sum(p.numel() for p in actor.parameters()), " (4 ELU layers of 400, then mean and std)")
print("critic parameters:", sum(p.numel() for p in critic.parameters()), " (3 ELU layers of 400, then one number)")
print("pre-tanh mean", tuple(dist.normal.mean.shape), "std", tuple(dist.normal.stddev.shape),
      f"| fresh actor: mean std = {dist.normal.stddev.mean():.2f}")
print("rsample", tuple(dist.rsample().shape), "| mode", tuple(dist.mode().shape), "| values", tuple(critic(features).shape))

# %% [markdown]
# What does a fresh actor do? Below, 5,000 actions from one state: the std of 5 pushes almost
# every tanh to the edges, so the untrained actor mostly "bangs" left or right. The mode picks
# one edge. Training narrows the std where the critic and reward say it pays.

# %%
with torch.no_grad():
    one = actor(features[:1])
    samples = one.rsample((5000,)).flatten()
    mode = one.mode().item()
fig, ax = plt.subplots(figsize=(6, 2.6))
ax.hist(samples.numpy(), bins=60, color="C0", alpha=0.8)
ax.axvline(mode, color="C3", label=f"mode (best of 100 samples) = {mode:.2f}")
ax.axvline(np.tanh(one.normal.mean.item()), color="k", ls="--", label="tanh(mean)")
ax.set_xlabel("action")
ax.set_title("5,000 actions of a freshly initialised actor, one state", fontsize=10)
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# ### A knob: mean scale and init std
#
# `knobs.tanh_gaussian_figure` (in `dreamer_lib/course/knobs.py`) builds the library's `Actor`
# with the `mean_scale` and `init_std` you choose, sets its last layer so that the network
# outputs a raw mean $m$ of your choice and a raw std of 0 (about what a fresh network outputs),
# and draws 20,000 actions. Left: their histogram, with $\tanh(\text{mean})$ dashed. Right: the
# soft bound $\text{mean} = c \tanh(m / c)$, $c$ the mean scale, and where $m$ lands on it.
# Four settings, one per row:
#
# - $m = 0$, the official values (mean scale 5, init std 5): 60% of the actions lie beyond
#   $\pm 0.99$, half at each edge, few in between;
# - init std 0.5: a single bump around 0 and no action beyond $\pm 0.99$, so the initial
#   exploration is set by the init std;
# - $m = 8$, init std 0.5: the mean is held at 4.61 (below 5), still far enough out that every
#   action is beyond 0.99;
# - the same with mean scale 1: the mean cannot pass 1, $\tanh(\text{mean}) = 0.76$, and the
#   actions pile up below 1 instead of at it.

# %%
from dreamer_lib.course import knobs

figure = knobs.compare(knobs.tanh_gaussian_figure, [
    dict(raw_mean=0.0, mean_scale=5.0, init_std=5.0), dict(raw_mean=0.0, mean_scale=5.0, init_std=0.5),
    dict(raw_mean=8.0, mean_scale=5.0, init_std=0.5), dict(raw_mean=8.0, mean_scale=1.0, init_std=0.5)])
plt.show()

# %% [markdown]
# With a live kernel, move the sliders. Try: init std from 0.1 to 10 at $m = 0$ (when do the
# edges take over?); $m$ from 0 to 10 with mean scale 5 and then 1.

# %%
knobs.tanh_gaussian_widget()

# %% [markdown]
# **Before the returns: critics and TD($\lambda$).** A critic $v_\psi(s_t)$ estimates the value of
# a state: the expected discounted sum of the rewards that follow it under the current actor,
# $\mathbb E\big[\sum_{n \ge 0} \gamma^n r_{t+n}\big]$. It learns from targets built of rewards
# and its own values of later states:
#
# - the **1-step TD target** $r_t + \gamma\, v_{t+1}$: one reward, then the critic's estimate;
# - the **$k$-step return** $V_N^k = \sum_{n<k} \gamma^n r_{t+n} + \gamma^k v_{t+k}$: $k$ rewards,
#   then the estimate; the larger $k$, the less it leans on the critic and the more random terms
#   it sums;
# - the **$\lambda$-return** of TD($\lambda$): all $k$-step returns mixed with weights
#   $(1-\lambda)\lambda^{k-1}$, the longest one taking the remaining weight. One backward pass
#   computes it, $R_t = r_t + d_t\big((1-\lambda)\,v_{t+1} + \lambda R_{t+1}\big)$ with
#   $d_t = \gamma$ here: $\lambda = 0$ gives the 1-step target, $\lambda = 1$ the longest return.
#
# A policy-gradient actor-critic (A2C, PPO) cannot differentiate the environment, so it estimates
# the actor's gradient from sampled actions with the likelihood ratio (REINFORCE),
# $\nabla_\phi \ln q_\phi(a_t \mid s_t)\,\big(R_t - v_\psi(s_t)\big)$, a noisy estimate. In
# Dreamer's imagination the next states, rewards and values are differentiable functions of the
# actions (the RSSM's prior, the reward head, the critic), so the actor maximises $R_t$ by
# backpropagating it through the learned dynamics: analytic gradients (section 3 of the paper,
# and section 3 below).

# %% [markdown]
# ## 2. $\lambda$-returns (equation 6), by hand
#
# From a start state the actor imagines $H$ steps $s_1, \dots, s_H$ (horizon 15 in the paper);
# the world model predicts a reward $r_\tau$ and the critic a value $v_\tau$ for each. What
# target should the critic learn, and what should the actor maximise? Section 3 compares three:
#
# - $V_R$: the sum of imagined rewards, which ignores everything after the horizon;
# - $V_N^k$: $k$ rewards, then the critic's guess, $\sum_{n<k} \gamma^n r_n + \gamma^k v_k$;
# - $V_\lambda$, equation 6: an exponentially weighted average of all the $V_N^k$, which balances
#   the bias of a young critic (small $k$) against the variance of long imagined sums (large $k$).
#
# Written out, equation 6 is a mixture; computed, it is one backward recursion (the official
# code's `lambda_return`), with discount $d_t$ ($=\gamma$ without a continue head):
#
# $$ R_t = r_t + d_t\big((1-\lambda)\,v_{t+1} + \lambda R_{t+1}\big), \qquad R_H = v_H \text{ (the bootstrap).} $$
#
# Note the indices: step $t$'s target uses the value of the **next** state, $v_{t+1}$. Let us
# check on four steps that the recursion and the mixture agree.

# %%
# NBVAL_CHECK_OUTPUT
gamma, lam = 0.9, 0.5
r = [1.0, 0.0, 0.0, 2.0]  # rewards r_0..r_3 of four imagined steps
v = [4.0, 3.0, 2.0, 5.0]  # critic's values v_0..v_3 of the same states
bootstrap = 6.0  # v_4: the value of the state after the last step

R = [0.0] * 4
R_next = bootstrap  # R_4 = v_4
for t in reversed(range(4)):
    v_next = v[t + 1] if t < 3 else bootstrap
    R[t] = r[t] + gamma * ((1 - lam) * v_next + lam * R_next)
    print(f"R_{t} = r_{t} + g((1-l) v_{t + 1} + l R_{t + 1}) = {r[t]} + {gamma}*({1 - lam}*{v_next} + {lam}*{R_next:.4f})"
          f" = {R[t]:.4f}")
    R_next = R[t]


def n_step(k):  # V_N^k at step 0: k rewards, then the value of state k
    values = v[1:] + [bootstrap]
    return sum(gamma ** n * r[n] for n in range(k)) + gamma ** k * values[k - 1]


mixture = (1 - lam) * sum(lam ** (k - 1) * n_step(k) for k in range(1, 4)) + lam ** 3 * n_step(4)
print("n-step returns V_N^1..4 at step 0:", [round(n_step(k), 4) for k in range(1, 5)])
print(f"equation 6 as a mixture: (1-l)(V1 + l V2 + l^2 V3) + l^3 V4 = {mixture:.4f}   recursion: R_0 = {R[0]:.4f}")

# %% [markdown]
# Note that $v_0$ (the value of the start state) never entered: a return starts with the
# reward of its own step and bootstraps with the values *after* it.
#
# ### Exercise 5.1: vectorised $\lambda$-returns
#
# *(★★☆, ~20 min)*
#
# Now for tensors: rewards, values and discounts of shape `(H, N)` (time-major: `H` imagined
# steps from `N` start states) and a bootstrap of shape `(N,)`. The bootstrap is $v_H$, the
# value of the state *after* the last step, not `values[-1]` (that is $v_{H-1}$). The recursion
# runs backwards over time, but everything across the `N` rollouts happens at once. Build
# `next_values` $v_{t+1}$ with one `torch.cat`, precompute the part that does not depend on
# $R_{t+1}$, then loop backwards. Keep everything in torch: the actor will backpropagate through
# these returns.

# %%
# @save dreamer_lib.actor_critic
def compute_lambda_returns(rewards, values, discounts, bootstrap, lambda_: float = 0.95):
    """V_lambda of equation 6, computed backwards in time. All (H, N) except bootstrap (N,).

        R_t = r_t + d_t * ((1 - lambda) * v_{t+1} + lambda * R_{t+1}),   v_H = R_H = bootstrap

    lambda = 0 gives one-step TD targets r_t + d_t v_{t+1}; lambda = 1 the discounted return
    of the imagined rewards, bootstrapped with the last value."""
    # BEGIN SOLUTION 5.1: compute the lambda-returns (H, N) with the backward recursion of equation 6
    next_values = torch.cat([values[1:], bootstrap[None]], 0)  # v_{t+1}
    inputs = rewards + discounts * (1 - lambda_) * next_values
    returns, last = [], bootstrap
    for t in reversed(range(rewards.shape[0])):
        last = inputs[t] + discounts[t] * lambda_ * last
        returns.append(last)
    return torch.stack(returns[::-1])
    # END SOLUTION


# %%
from dreamer_lib.course.checks.actor_critic import check_lambda_returns

check_lambda_returns(compute_lambda_returns)

# %% [markdown]
# Your function on the worked example, as a batch of one rollout, and on the same four steps
# with three values of $\lambda$: $\lambda = 0$ trusts the critic after one step, $\lambda = 1$
# sums all four rewards and trusts the critic only at the end.

# %% [markdown]
# **Predict before you run.** On the four steps of the worked example: will the last return $R_3$
# change with $\lambda$? And which of the $k$-step returns $V_N^1, \dots, V_N^4$ printed above will
# $R_0$ equal at $\lambda = 0$, and which at $\lambda = 1$? Write down your guess, then run the next
# cell.

# %%
# NBVAL_CHECK_OUTPUT
rewards_t, values_t = torch.tensor(r)[:, None], torch.tensor(v)[:, None]  # (4, 1)
discounts_t, bootstrap_t = torch.full((4, 1), gamma), torch.tensor([bootstrap])
print("by hand:   ", [round(x, 4) for x in R])
print("vectorised:", [round(x, 4) for x in compute_lambda_returns(rewards_t, values_t, discounts_t, bootstrap_t, lam)[:, 0].tolist()])
for lambda_ in (0.0, 0.95, 1.0):
    out = compute_lambda_returns(rewards_t, values_t, discounts_t, bootstrap_t, lambda_)[:, 0]
    print(f"lambda = {lambda_:4}: R = {[round(x, 3) for x in out.tolist()]}")

# %% [markdown]
# ### A knob: $\lambda$ and the horizon
#
# `knobs.lambda_return_figure` runs the library's `compute_lambda_returns` on one fixed imagined
# trajectory of 30 steps ($\gamma = 0.99$) with a late reward (1 per step at steps 20-24) and a
# wrong critic: half the true return plus fixed errors. Left: the rewards, the true return, the
# critic's $v_t$ and $V_\lambda(s_t)$ for the steps before the horizon $H$, where the return
# bootstraps with $v_H$. Right: the weight of each $n$-step return in $V_\lambda(s_0)$, read off
# the library by autograd: $(1-\lambda)\lambda^{n-1}$ for $n < H$ and $\lambda^{H-1}$ for $n = H$;
# they sum to 1. Four settings, one per row:
#
# - $\lambda = 0$, $H = 15$: all the weight on $n = 1$, the one-step target $r_t + \gamma v_{t+1}$;
#   $V_\lambda$ copies the critic's zigzag, one step ahead;
# - $\lambda = 0.95$, $H = 15$ (the paper's): the zigzag is averaged away, but the rewards lie
#   past the horizon and reach the return only through $v_{15}$, so $V_\lambda$ stays at the
#   critic's level (1.89 against a true 4.01 at $s_0$);
# - $\lambda = 0.95$, $H = 30$: the rewards are inside the horizon; $V_\lambda$ comes close to
#   the true return just before the reward, but at $s_0$ (2.58) most of the weight is on returns
#   shorter than 20 steps, which see no reward and lean on the critic;
# - $\lambda = 1$, $H = 30$: all the weight on $n = H$, the discounted reward sum plus
#   $\gamma^{30} v_{30}$; what is left of the gap (3.78 against 4.01) is the critic's error at $v_{30}$.

# %%
figure = knobs.compare(knobs.lambda_return_figure, [dict(lambda_=0.0, horizon=15), dict(lambda_=0.95, horizon=15),
                                                    dict(lambda_=0.95, horizon=30), dict(lambda_=1.0, horizon=30)])
plt.show()

# %% [markdown]
# With a live kernel, move the sliders. Try: $\lambda = 0.95$ with $H$ from 15 to 25 (when does
# the reward start to count?); $\lambda$ from 0 to 1 at $H = 30$, watching the weights move from
# the first bar to the last.

# %%
knobs.lambda_return_widget()

# %% [markdown]
# ## 3. The actor loss: maximise the returns through the dynamics (equation 7)
#
# The actor maximises $\mathbb E\big[\sum_\tau V_\lambda(s_\tau)\big]$. Dreamer does not need a
# likelihood-ratio (REINFORCE) estimator for this: the imagined trajectory is a differentiable
# function of the actions (reparameterised samples through the RSSM's prior, the reward head
# and the critic), so the loss is simply
#
# $$ \mathcal L_\text{actor} = -\operatorname{mean}_{t, n}\big(w_t \, R_t\big), $$
#
# and `loss.backward()` computes the analytic gradient of the imagined return with respect to
# every action, through the learned dynamics. The weights $w_t = \prod_{k<t} d_k$ are the
# probability that the imagined episode is still running at step $t$: 1 at the start state,
# then the cumulative product of the discounts. With a learned continue head (Atari, DMLab)
# they are what stops a dead imagined agent from collecting rewards; without one, as here,
# $d_k = \gamma$ and $w_t = \gamma^t$. The weighting and its `stop_gradient` come from the
# official code; the paper does not mention them.
#
# ### Exercise 5.2: discount weights and the actor loss
#
# *(★☆☆, ~10 min)*
#
# Write `discount_weights` (shift the discounts one step so the first weight is 1, then a
# cumulative product over time, then detach) and `compute_actor_loss` (mind the sign: we
# *maximise* the return, and optimisers minimise).

# %%
# @save dreamer_lib.actor_critic
def discount_weights(discounts: torch.Tensor) -> torch.Tensor:
    """Weight of step t in the losses: the probability of reaching it, prod_{k<t} d_k (1 at t=0).
    (H, N) -> (H, N), cumulative, without gradient (as the official code)."""
    # BEGIN SOLUTION 5.2: 1 at t=0, then the cumulative product of the previous discounts; detached
    shifted = torch.cat([torch.ones_like(discounts[:1]), discounts[:-1]], 0)
    return torch.cumprod(shifted, 0).detach()
    # END SOLUTION


def compute_actor_loss(lambda_returns: torch.Tensor, discounts: torch.Tensor) -> torch.Tensor:
    """Maximise the discount-weighted lambda-returns. The gradient flows from the returns back
    through the reward and value predictions, the imagined states and the sampled actions into
    the actor: analytic gradients through the learned dynamics (section 3, eq. 7)."""
    # BEGIN SOLUTION 5.2: the negative mean of the discount-weighted lambda-returns
    return -(discount_weights(discounts) * lambda_returns).mean()
    # END SOLUTION


# %%
from dreamer_lib.course.checks.actor_critic import check_actor_loss, check_discount_weights

check_discount_weights(discount_weights)
check_actor_loss(compute_actor_loss)

# %% [markdown]
# ## 4. The critic loss (equation 8)
#
# The critic regresses the $\lambda$-returns: the negative log-likelihood of a unit-variance
# Gaussian, $\tfrac12 (v_\psi(s_t) - R_t)^2$, with the same weights. Two things must not get a
# gradient from this loss:
#
# - the **target** $R_t$: it is built from the critic's own values, and a critic that could move
#   its target would chase it; worse, $R_t$ carries the gradient path into the actor and the
#   world model, which this loss has no business training. So `lambda_returns.detach()`.
# - the **features** the critic reads: the value loss must not reshape the world model's states.
#   Calling the critic on `features.detach()` does that (the cell in section 5 does), and so does
#   asking autograd for the critic's parameters only, which is what the agent does: it reuses the
#   values it already computed for the returns, saving a second pass through the critic.
#   (The paper has no target network; neither do we.)
#
# ### Exercise 5.3: the critic loss
#
# *(★☆☆, ~5 min)*

# %%
# @save dreamer_lib.actor_critic
def compute_critic_loss(values: torch.Tensor, lambda_returns: torch.Tensor, discounts: torch.Tensor):
    """Regress v(s_t) on the lambda-returns (eq. 8): the negative log-likelihood of a unit-variance
    Gaussian, 0.5 (v - R)^2 without its constant. The target is detached, so the critic does not
    move its own target. Take this loss's gradient w.r.t. the critic's parameters only (as
    DreamerV1.update does) or compute `values` on detached features: either way the critic loss
    does not reshape the world model's states."""
    # BEGIN SOLUTION 5.3: the weighted 0.5 * squared error between values and the detached returns
    return (discount_weights(discounts) * 0.5 * (values - lambda_returns.detach()).pow(2)).mean()
    # END SOLUTION


# %%
from dreamer_lib.course.checks.actor_critic import check_critic_loss

check_critic_loss(compute_critic_loss)

# %% [markdown]
# ## 5. One step of imagination
#
# Imagination is the RSSM's prior driven by the actor: from a state $s_t$ the actor samples
# $a_t$, and the prior predicts $s_{t+1} = (h_{t+1}, z_{t+1})$ with
# $h_{t+1} = \mathrm{GRU}(h_t, [z_t, a_t])$, $z_{t+1} \sim p(z_{t+1} \mid h_{t+1})$. No frame is
# encoded, no env is stepped: a step costs a few small matrix products, which is why Dreamer can
# afford to imagine from every one of the $50 \times 50$ posterior states of a batch.
#
# One detail from the official code: the actor reads the **detached** features,
# `actor(state.features.detach())`. The state itself keeps its gradient: the return still
# reaches action $a_t$ through the prior, the reward head and the critic of every later step.
# What the detach cuts is the path *through the actor's own input*: the actor is not trained to
# change the states it will later read via its later actions' reaction to them. This keeps the
# backpropagation through time shorter and better behaved; the paper does not discuss it.
#
# ### Exercise 5.4: `imagine_step(rssm, actor, state) -> (action, next_state)`
#
# *(★☆☆, ~10 min)*
#
# Sample the action with `rsample()` (differentiable; the actor's `TanhNormal` has only
# `rsample()`, no `sample()`), then call `rssm.prior`.

# %%
def imagine_step(rssm, actor, state):
    """One imagination step: a_t ~ actor(s_t) on detached features, s_{t+1} ~ prior(s_t, a_t)."""
    # BEGIN SOLUTION 5.4: sample a differentiable action from the actor on the detached features, then step the prior
    action = actor(state.features.detach()).rsample()
    next_state = rssm.prior(state, action)
    return action, next_state
    # END SOLUTION


# %%
from dreamer_lib.course.checks.actor_critic import check_imagine_step

check_imagine_step(imagine_step)

# %% [markdown]
# Repeated $H$ times, your step is the library's `RSSM.rollout_imagination`, sample for sample
# when both start from the same random seed:

# %%
# NBVAL_CHECK_OUTPUT
from dreamer_lib.rssm import RSSM, stack_states

print(inspect.getsource(RSSM.rollout_imagination).split('"""')[-1])
torch.manual_seed(1)
rssm = RSSM(action_size=1, embed_size=1024)  # paper sizes: stoch 30, deter 200
start = rssm.get_initial_state(4)
torch.manual_seed(2)
library_states, library_actions, _ = rssm.rollout_imagination(start, actor, horizon=15)
torch.manual_seed(2)
state, states, actions = start, [], []
for _ in range(15):
    action, state = imagine_step(rssm, actor, state)
    states.append(state)
    actions.append(action)
mine = stack_states(states)
print("imagined features (H, N, stoch + deter):", tuple(mine.features.shape),
      "| same as rollout_imagination:", all(torch.equal(a, b) for a, b in zip(mine, library_states)))
print("actions (H, N, A):", tuple(library_actions.shape),
      "| same as rollout_imagination:", torch.equal(torch.stack(actions), library_actions))

# %% [markdown]
# ## 6. Which parameters does each loss train?
#
# Put the pieces together on a small agent, as `DreamerV1.behaviour_losses` does: start states
# (detached posteriors; here random states), imagine, predict rewards and values, returns for
# steps $0..H-2$ bootstrapped with the last value (as the official code), then both losses.
# The actor loss's gradient reaches the actor *and* every world-model part on its path (GRU,
# prior, reward head, critic). If an optimiser followed all of it, the world model would learn
# to *predict* high rewards instead of the actor learning to *earn* them. So Dreamer asks
# autograd only for the actor's parameters (`DreamerV1.update` calls
# `torch.autograd.grad(loss, params)` once per group) and keeps one optimiser per group: the world
# model learns only from its own loss, the critic only from equation 8.

# %%
# NBVAL_CHECK_OUTPUT
from dreamer_lib.agent import DreamerV1
from dreamer_lib.config import make_config

torch.manual_seed(3)
small = DreamerV1(make_config("ci", device="cpu"), action_size=1)
c = small.config
start = small.rssm.get_initial_state(6)  # stand-ins for detached posterior states
start = start._replace(stoch=torch.randn_like(start.stoch), deter=torch.randn_like(start.deter))
state, states = start, []
for _ in range(c.horizon):
    _, state = imagine_step(small.rssm, small.actor, state)
    states.append(state)
features = stack_states(states).features  # (H, N, features)
rewards, values = small.reward(features), small.critic(features)  # (H, N) each
discounts = torch.full_like(rewards, c.gamma)
returns = compute_lambda_returns(rewards[:-1], values[:-1], discounts[:-1], values[-1], c.lambda_)
actor_loss = compute_actor_loss(returns, discounts[:-1])
critic_loss = compute_critic_loss(small.critic(features[:-1].detach()), returns, discounts[:-1])
print("features", tuple(features.shape), "| returns", tuple(returns.shape), "| losses", tuple(actor_loss.shape))

groups = {"actor": small.actor, "critic": small.critic, "reward head": small.reward, "RSSM (prior, GRU)": small.rssm}
for name, loss in (("actor loss", actor_loss), ("critic loss", critic_loss)):
    reached = []
    for group, module in groups.items():
        grads = torch.autograd.grad(loss, list(module.parameters()), retain_graph=True, allow_unused=True)
        if any(g is not None and g.abs().sum() > 0 for g in grads):
            reached.append(group)
    print(f"{name} has a gradient for: {', '.join(reached)}")

# %% [markdown]
# The critic loss reaches only the critic (detached target and features). The actor loss reaches
# the world model too, and the agent simply does not apply that part: only the actor's optimiser
# steps with it.
#
# ## 7. Picture: imagined futures from real states
#
# Time to see imagination. We collect a few episodes of random Pendulum play and train a
# `DreamerV1` on windows sampled from them, in two parts:
#
# - first the **world model alone**, `agent.update_world_model(batch)` (the library's version of
#   your step from exercise 4.1): imagination is only as good as the model, and a world-model
#   step costs a third of a full update. Pendulum's rod is thin: in lesson 4 the model drew the
#   background and the pivot but no rod after 400 updates, and a blurred rod after 1,200;
# - then **full updates**, `agent.update(batch)`, exactly as in training: world model, then actor
#   and critic on imaginations from every posterior state of the batch.
#
# Then we filter a *real* sequence with the posterior (as the agent does when it acts), imagine
# `horizon` steps from three of its posterior states with your `imagine_step`, decode the
# imagined states into frames and write the predicted reward and the critic's value under each.
# On the CPU scale we use batches of 8 windows of 16 steps (the cpu preset trains on 16 x 24)
# so that all of it takes minutes, not hours; the network sizes are the preset's.

# %%
import time

from dreamer_lib.buffer import ReplayBuffer
from dreamer_lib.envs import make_env, run_episode

config = scale.config.replace(batch_size=scale.pick(gpu=50, cpu=8, ci=3), seq_len=scale.pick(gpu=50, cpu=16, ci=8))
env = make_env(config.env, config.action_repeat, config.time_limit, seed=config.seed)
buffer = ReplayBuffer(capacity=config.replay_capacity, seed=config.seed)
for _ in range(scale.pick(gpu=10, cpu=5, ci=2)):
    buffer.add_episode(run_episode(env))  # uniformly random actions
agent = DreamerV1(config, env.action_space.shape[0], device=scale.device)
print(f"{len(buffer)} random episodes of {len(buffer.episodes[0]['image']) - 1} steps; batches of "
      f"{config.batch_size} x {config.seq_len}")


def report(i, metrics, started):
    metrics = {key: float(value.detach()) for key, value in metrics.items()}
    behaviour = f"  imagined return {metrics['imagined_return']:.2f}" if "imagined_return" in metrics else ""
    print(f"update {i:5d}: image loss {metrics['image_loss']:.0f}  reward loss {metrics['reward_loss']:.3f}  "
          f"KL {metrics['kl']:.2f}{behaviour}  ({time.time() - started:.0f} s)")


model_updates, full_updates = scale.pick(gpu=1000, cpu=1500, ci=2), scale.pick(gpu=2000, cpu=300, ci=2)
started = time.time()
for i in range(1, model_updates + 1):  # the world model alone: lesson 4's step
    metrics = agent.update_world_model(buffer.sample(config.batch_size, config.seq_len))
    if i % max(1, model_updates // 3) == 0:
        report(i, metrics, started)
for i in range(model_updates + 1, model_updates + full_updates + 1):  # world model, actor and critic
    metrics = agent.update(buffer.sample(config.batch_size, config.seq_len))
    if (i - model_updates) % max(1, full_updates // 3) == 0:
        report(i, metrics, started)

# %%
from dreamer_lib.course import pictures
from dreamer_lib.networks import preprocess, to_uint8

real = run_episode(env)  # a fresh random episode the model has not trained on
images = torch.as_tensor(real["image"], device=agent.device)[:, None]  # (T, 1, 64, 64, 3)
actions = torch.as_tensor(real["action"], device=agent.device)[:, None]  # (T, 1, A)
starts = [10, 25, 40]
torch.manual_seed(4)
with torch.no_grad():
    posterior, _ = agent.rssm.rollout_observation(agent.encoder(preprocess(images)), actions,
                                                  agent.rssm.get_initial_state(1, agent.device))
    state = posterior.reshape(-1).at(starts)  # (T, 1, ...) -> (3, ...): three real starting states
    states = []
    for _ in range(config.horizon):
        _, state = imagine_step(agent.rssm, agent.actor, state)
        states.append(state)
    imagined = stack_states(states).features  # (H, 3, features)
    frames = to_uint8(agent.decoder(imagined)).transpose(0, 1).cpu()  # (3, H, 64, 64, 3)
    imagined_rewards = (agent.reward(imagined) / config.reward_scale).T.cpu()  # (3, H), env units
    imagined_values = (agent.critic(imagined) / config.reward_scale).T.cpu()
print("imagined frames", tuple(frames.shape), "| rewards", tuple(imagined_rewards.shape))
figure = pictures.imagination_strip(frames, imagined_rewards, imagined_values, starts=real["image"][starts],
                                    every=max(1, config.horizon // 8),
                                    title="Imagined from three real states (r: predicted reward, v: value, env units)")
plt.show()

# %% [markdown]
# How to read it: each row starts at a real frame; the frames to its right were never observed,
# the world model dreamt them while the actor chose the torques. After this short training on
# random play (CPU scale), the dreamt pendulum keeps swinging with plausible physics, and the
# predicted reward follows the angle: in the committed run about -15 to -22 where the dreamt pole
# hangs down and about -9 to -13 where it swings out towards horizontal (the first row, +8 to +11;
# Pendulum pays -19.7 per step, two frames, hanging still at the bottom, about -5 plus a velocity
# term at horizontal and 0 balanced upright). The value, a discounted sum of about a hundred such
# rewards, lies between -1,181 and -1,332. The actor has had only 300 full updates, so it has not yet learned to swing
# up. (At the ci scale nothing is trained and the
# frames are noise.) The picture shows the mechanism: a real state in, an imagined trajectory
# out, with a reward and a value at every step, all differentiable, which is everything
# equations 6-8 need.
#
# Lesson 6 runs the whole loop until the agent swings the pendulum up, and lesson 7's debugger
# puts real frames, reconstructions, open-loop predictions and imagination side by side on a
# trained agent.
#
# Below, the three rollouts' predicted rewards and the $\lambda$-returns your
# `compute_lambda_returns` makes of them (the target the critic learns and the quantity the actor
# maximises).

# %%
with torch.no_grad():
    discounts = torch.full_like(imagined_rewards.T, config.gamma)
    returns = compute_lambda_returns(imagined_rewards.T[:-1], imagined_values.T[:-1], discounts[:-1],
                                     imagined_values.T[-1], config.lambda_)  # (H-1, 3)
fig, axes = plt.subplots(1, 2, figsize=(9, 3))
for n, t0 in enumerate(starts):
    axes[0].plot(range(1, config.horizon + 1), imagined_rewards[n], "o-", ms=3, label=f"from real step {t0}")
    axes[1].plot(range(1, config.horizon), returns[:, n], "o-", ms=3)
axes[0].set(title="predicted reward", xlabel="imagined step")
axes[1].set(title="lambda-return (env units)", xlabel="imagined step")
axes[0].legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Summary
#
# - The actor is a tanh-Gaussian trained by reparameterised gradients through the world model;
#   the critic regresses $\lambda$-returns (eq. 6) that mix $k$-step returns of all lengths.
# - The returns use $v_{t+1}$, never $v_t$; the critic's target and the loss weights are
#   detached; the actor's input is detached; each loss only updates its own parameters.
# - Next, lesson 6: all of it in the loop of algorithm 1, on a real environment.

# %%
print(f"Lesson 5 ran in {scale.elapsed()} at scale {scale.name}")
