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
# # Lesson 8: Beyond DreamerV1, what DreamerV2 and V3 changed
#
# *Time to run:* ci: 30 s, cpu (2 cores): 2 min, gpu: not measured yet (cpu: an Intel Xeon) ·
# Words: the [glossary](GLOSSARY.md).
#
# DreamerV1 is where the later Dreamers start. DreamerV2 (Hafner et al. 2021, "Mastering Atari
# with Discrete World Models") and DreamerV3 (Hafner et al. 2023, "Mastering Diverse Domains
# through World Models") keep its loop, world model, imagination and actor-critic, and change a
# handful of pieces. All but the first answer a failure you have met in this course; the first
# answers one of Atari's:
#
# | change | paper | the failure it answers | `dreamer-train` flag |
# |---|---|---|---|
# | a discrete latent: 32 categoricals of 32 classes, straight-through gradients | V2, section 2 | a Gaussian $z$ has one mode: it cannot say "the ball goes left *or* right" | `--latent-classes 32 --stoch-size 32` |
# | KL balancing | V2, section 2 | the posterior is pulled towards a prior that has not learned yet (lesson 3's collapse) | `--kl-balance 0.8` |
# | free nats per state ("free bits") | V3, section 3 | the paper's clamp of the mean KL stops the gradient of every state or of none (lesson 3) | `--free-nats-per-state --free-nats 1` |
# | returns scaled by their 5th-95th percentile range | V3, section 3 | returns on another scale per task: the entropy bonus weighs differently on each (why the `cpu` preset multiplies Pendulum's rewards by 0.1) | `--return-normalization` |
# | a slow critic | V2 and V3 | the critic regresses on returns built from its own latest step | `--slow-critic-decay 0.98` |
#
# Every switch is a `Config` field, off in every preset: the `paper` preset stays DreamerV1.
# docs/provenance.md says where each comes from. One more change of V3 is left out: symlog
# targets for the decoder and the reward head, which keep targets whose size spans orders of
# magnitude from dominating a squared error. Pendulum's pixels lie in [-0.5, 0.5] and its rewards
# reach the reward head scaled by 0.1, and the head's error does not grow with the reward's size
# (`python benchmarks/reward_fit.py` on a run; docs/provenance.md has the numbers), so there is
# nothing here for it to fix. You will write the core of four of them
# (exercises 8.1-8.4), see each at work (on the trained model that ships with the course where a
# trained model shows it, on a small example where it does not), and end with what they change
# on pixel Pendulum, measured.
#
# Where this sits: the whole chain of lessons 1-7, **env → replay buffer → world model →
# imagination → actor-critic**, with five of its pieces swapped.

# %%
from dreamer_lib.course.scale import setup

scale = setup("Lesson 8: beyond DreamerV1")

# %% [markdown]
# ## 1. A discrete latent and the straight-through gradient
#
# In DreamerV1, $z_t$ is a diagonal Gaussian: one bump per dimension. DreamerV2 replaces it with
# 32 categorical variables of 32 classes each: $z_t$ is 32 one-hot vectors, flattened to 1,024
# numbers, of which 32 are 1. A categorical can put its mass on several classes at once, which
# suits a world whose next frame can go one way or another, and V2 reports it learned Atari
# better than the Gaussian did.
#
# A one-hot draw has no gradient: the class is picked, not computed. V2 uses the
# **straight-through** estimator: the forward pass uses the sample, the backward pass pretends it
# was the probabilities,
#
# $$z = \text{sample} + p - \operatorname{sg}(p),$$
#
# which is the sample in value (the last two terms cancel) and has the gradient of $p$ (sg is
# the stop-gradient, `.detach()`). DreamerV3 adds one more detail: it mixes 1% of the uniform
# distribution into $p$, $p = 0.99\,\mathrm{softmax}(\ell) + 0.01 / K$, so that no class ever has
# probability 0 and the KL, which takes $\log p$, stays finite.
#
# ### Exercise 8.1: `straight_through_sample(logits) -> (sample, probs)`
#
# *(★★☆, ~15 min)*
#
# `logits` has shape `(..., classes)`: one row of logits per categorical variable. Return the
# mixed probabilities and a one-hot sample drawn from them, with the straight-through term.
# `torch.multinomial(probs, 1)` draws one class per row of a 2-D tensor; `F.one_hot` makes it
# one-hot.

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F


def straight_through_sample(logits):
    """(..., classes) logits -> (sample, probs): probs = 0.99 softmax(logits) + 0.01 / classes, and a
    one-hot sample drawn from probs whose gradient is that of probs (straight-through)."""
    # BEGIN SOLUTION 8.1: mix the probabilities, draw a one-hot sample, add the straight-through term
    classes = logits.shape[-1]
    probs = 0.99 * logits.softmax(-1) + 0.01 / classes
    drawn = torch.multinomial(probs.reshape(-1, classes), 1).reshape(probs.shape[:-1])
    sample = F.one_hot(drawn, classes).to(probs.dtype)
    return sample + probs - probs.detach(), probs
    # END SOLUTION


# %%
from dreamer_lib.course.checks.later_dreamers import check_straight_through_sample

check_straight_through_sample(straight_through_sample)

# %% [markdown]
# **What does the straight-through gradient estimate?** Take one categorical of 5 classes and a
# loss of the sample, $L(z) = (w \cdot z)^2$ with a fixed $w$: a stand-in for what the decoder or
# reward head does with $z$. The gradient we would like is that of the expected loss,
# $\nabla_\ell\, \mathbb E_{z \sim p}[L(z)]$, which here can be written out, because there are
# only 5 outcomes. Below: that exact gradient, the straight-through estimate averaged over many
# samples, and the gradient without the straight-through term.
#
# **Predict before you run.** Will the averaged straight-through estimate equal the exact
# gradient? (Hint: straight-through differentiates $L$ at the sample as if $z$ could move
# continuously.)

# %%
# NBVAL_CHECK_OUTPUT
w = torch.tensor([1.0, 3.0, 0.0, -2.0, 2.0])
logits = torch.tensor([0.5, 1.0, -0.5, 0.0, 0.2], requires_grad=True)
loss = lambda z: (z @ w) ** 2  # noqa: E731

probs = 0.99 * logits.softmax(-1) + 0.01 / 5
(exact,) = torch.autograd.grad((probs * loss(torch.eye(5))).sum(), logits)  # E[L] = sum_k p_k L(one-hot k)
torch.manual_seed(0)
draws = 20_000
sample, _ = straight_through_sample(logits.expand(draws, 5))
(straight_through,) = torch.autograd.grad(loss(sample).mean(), logits)
without = torch.zeros(5)  # a one-hot draw alone: no gradient reaches the logits
print("exact gradient of E[L]:         ", [round(x, 3) for x in exact.tolist()])
print(f"straight-through, {draws} draws:", [round(x, 3) for x in straight_through.tolist()])
print(f"cosine between the two: {F.cosine_similarity(exact, straight_through, dim=0):.3f}")

# %%
fig, ax = plt.subplots(figsize=(7, 2.6))
x = np.arange(5)
for i, (values, label) in enumerate(((exact, "exact gradient of E[L]"), (straight_through, "straight-through (mean)"),
                                     (without, "no straight-through term: 0"))):
    ax.bar(x + (i - 1) * 0.27, values.numpy(), width=0.27, label=label)
ax.axhline(0, color="k", lw=0.5)
ax.set_xticks(x, [f"class {k}\np = {p:.2f}" for k, p in enumerate(probs.tolist())], fontsize=8)
ax.set_ylabel("d loss / d logit")
ax.set_title("Gradient w.r.t. the logits of one categorical, L = (w . z)^2", fontsize=10)
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# Straight-through is an estimate: it differentiates $L$ at the sample as if $z$ were continuous,
# so for a loss that is not linear in $z$ it is biased. The two bars of a class differ, for
# classes 3 and 4 even in sign, though over all five classes the two point in similar directions
# (the cosine of 0.76 above). Without the term, the latent would get no gradient at all from the
# decoder and the reward head, and the representation would learn nothing. For a loss that is
# linear in $z$, straight-through is exact in expectation: try `loss = lambda z: z @ w`.
#
# ### The discrete RSSM of the library
#
# `dreamer_lib.discrete.DiscreteRSSM` is `rssm.RSSM` with another `_distribution`: its stats layers
# give 32 x 32 logits instead of a mean and a std, and it samples the way you just did. Its KL,
# `discrete.categorical_kl`, is $\sum_k q_k (\log q_k - \log p_k)$ summed over the 32 variables.
# Below, a discrete world model trains for a few updates on the episode of the model that ships with
# the course, and we look at what its posterior says along that episode: for each of the 32
# variables, the class it picks at each step.

# %%
from dreamer_lib.agent import DreamerV1
from dreamer_lib.buffer import ReplayBuffer
from dreamer_lib.config import make_config
from dreamer_lib.course.pretrained import pretrained
from dreamer_lib.evaluate import load_agent

MODEL = pretrained("pendulum-cpu")
buffer = ReplayBuffer(MODEL / "episodes", capacity=10**9)
buffer.load()
episode = buffer.episodes[0]
print(f"the shipped model's episode: {len(episode['image']) - 1} steps, return {episode['reward'].sum():.0f}")

discrete_config = make_config("cpu", latent_classes=32, stoch_size=32, seed=0, device=scale.device.type)
torch.manual_seed(0)
discrete_agent = DreamerV1(discrete_config, action_size=1)
updates = scale.pick(gpu=600, cpu=300, ci=3)
kls = []
for _ in range(updates):
    metrics = discrete_agent.update_world_model(buffer.sample(16, 24))
    kls.append(metrics["kl"].item())
print(f"{updates} world-model updates: KL(posterior || prior) {kls[0]:.2f} -> {kls[-1]:.2f} nats per step")

# %%
with torch.no_grad():
    batch = {k: v[:, None] for k, v in episode.items()}  # (T, 1, ...): the whole episode as one window
    _, posterior, _ = discrete_agent.world_model_loss(*discrete_agent.to_batch(batch))
    class_probs = posterior.logits.exp().reshape(-1, 32, 32).cpu()  # (T, variables, classes)
classes_picked = class_probs.argmax(-1)  # (T, variables): each variable's most likely class at each step
confidence = class_probs.max(-1).values.mean().item()
print(f"mean probability of each variable's most likely class: {confidence:.2f} (uniform: {1 / 32:.3f})")
fig, axes = plt.subplots(1, 2, figsize=(11, 2.8), gridspec_kw=dict(width_ratios=[3, 1]))
picture = axes[0].imshow(classes_picked.T.numpy(), aspect="auto", cmap="turbo", vmin=0, vmax=31, interpolation="nearest")
fig.colorbar(picture, ax=axes[0], label="class", pad=0.01)
axes[0].set_xlabel("step of the episode")
axes[0].set_ylabel("variable (of 32)")
axes[0].set_title("most likely class of each variable (colour = class)", fontsize=9)
axes[1].imshow(class_probs[len(class_probs) // 2].numpy(), cmap="viridis", vmin=0, vmax=1)
axes[1].set_xlabel("class")
axes[1].set_ylabel("variable")
axes[1].set_title(f"probabilities at step {len(class_probs) // 2}", fontsize=9)
fig.tight_layout()
plt.show()

# %% [markdown]
# After these few updates a few variables keep one class along the whole episode (rows of one
# colour), most switch class along it, and at some steps many switch together (vertical streaks):
# the code has begun to depend on the frames, no more. The printed mean probability of the most
# likely class says the same, above the uniform 1/32 but far from 1. The right panel is one step's 32 x 32
# probabilities, each row summing to 1, still spread out. A full run trains the discrete model
# for thousands of updates (section 5).
#
# ## 2. KL balancing
#
# The KL term of equation 10 does two jobs at once: it trains the prior to predict the posterior,
# and it pulls the posterior towards the prior. Early in training the prior knows little, and
# pulling the posterior towards it pulls the representation towards what a poor predictor can
# predict. DreamerV2 splits the term into the same KL twice, each with one side stopped:
#
# $$\alpha\, \mathrm{KL}(\operatorname{sg}(q) \,\|\, p) + (1 - \alpha)\, \mathrm{KL}(q \,\|\, \operatorname{sg}(p)), \qquad \alpha = 0.8.$$
#
# In value this is the paper's KL (the two terms are equal). In gradient, the prior gets $\alpha$
# of it and the posterior $1 - \alpha$: the prior learns faster towards the posterior than the
# posterior is pulled towards the prior.
#
# ### Exercise 8.2: `balanced_kl(posterior, prior, alpha)`
#
# *(★☆☆, ~10 min)*
#
# Use your `kl_divergence` of lesson 3, here the library's `rssm.kl_divergence` (per state,
# summed over the latent); return the balanced KL's mean over batch and time. A state has
# `.detach()`.

# %%
from dreamer_lib.rssm import RSSMState, kl_divergence


def balanced_kl(posterior, prior, alpha):
    """alpha * mean KL(sg(posterior) || prior) + (1 - alpha) * mean KL(posterior || sg(prior))."""
    # BEGIN SOLUTION 8.2: the two KL terms, each with one side detached, weighted alpha and 1 - alpha
    return (alpha * kl_divergence(posterior.detach(), prior).mean()
            + (1 - alpha) * kl_divergence(posterior, prior.detach()).mean())
    # END SOLUTION


# %%
from dreamer_lib.course.checks.later_dreamers import check_balanced_kl

check_balanced_kl(balanced_kl)

# %% [markdown]
# **What the split does**, in one dimension. A posterior mean $\mu_q$ is pulled by a
# reconstruction loss towards the data (at 2) and by the KL towards a prior mean $\mu_p$, which
# starts at 0 and learns only through the KL; both stds are 1. Both take plain gradient steps on
# reconstruction + KL, with your `balanced_kl` at $\alpha = 0.8$, and at $\alpha = 0.5$, which is
# half the paper's KL gradient on each side.
#
# **Predict before you run.** Compared with $\alpha = 0.5$ (the same total gradient, split
# equally), does the prior catch up with the posterior faster or more slowly at $\alpha = 0.8$?
# And does the posterior end up nearer the data or further from it?

# %%
# NBVAL_CHECK_OUTPUT
def one_dimension(alpha, steps=60, lr=0.1):
    q_mean, p_mean = torch.tensor([0.0], requires_grad=True), torch.tensor([0.0], requires_grad=True)
    one = torch.ones(1)
    path = []
    for _ in range(steps):
        posterior = RSSMState(q_mean, one, q_mean, one)
        prior = RSSMState(p_mean, one, p_mean, one)
        loss = (q_mean - 2.0).pow(2).sum() / 2 + balanced_kl(posterior, prior, alpha)
        q_grad, p_grad = torch.autograd.grad(loss, [q_mean, p_mean])
        with torch.no_grad():
            q_mean -= lr * q_grad
            p_mean -= lr * p_grad
        path.append((q_mean.item(), p_mean.item()))
    return np.array(path)


paths = {alpha: one_dimension(alpha) for alpha in (0.5, 0.8)}
for alpha, path in paths.items():
    print(f"alpha = {alpha}: after 10 steps posterior {path[9, 0]:.2f}, prior {path[9, 1]:.2f}; "
          f"after 60: posterior {path[-1, 0]:.2f}, prior {path[-1, 1]:.2f}")

# %%
fig, ax = plt.subplots(figsize=(7, 2.8))
for (alpha, path), colour in zip(paths.items(), ("C0", "C3")):
    ax.plot(path[:, 0], color=colour, label=f"posterior mean, alpha = {alpha}")
    ax.plot(path[:, 1], color=colour, ls="--", label=f"prior mean, alpha = {alpha}")
ax.axhline(2.0, color="k", lw=0.5)
ax.text(1, 2.03, "the data", fontsize=8)
ax.set_xlabel("gradient step")
ax.set_ylabel("mean")
ax.set_title("KL balancing in one dimension: who moves towards whom", fontsize=10)
ax.legend(fontsize=7, ncol=2)
fig.tight_layout()
plt.show()

# %% [markdown]
# At $\alpha = 0.8$ the prior (dashed) climbs towards the posterior faster than at 0.5, and the
# posterior, pulled less towards the prior, ends nearer the data: the numbers printed above.
#
# ### Free nats per state (DreamerV3's "free bits")
#
# Lesson 3's free nats clamp the KL *averaged over the batch*: while the mean is below 3 nats,
# no state gets any KL gradient; above it, every state does. DreamerV3 clamps each state's KL
# before the mean (`rssm.kl_loss_per_state`, at 1 nat in V3): a state whose posterior its prior
# already explains gives no gradient, and the others keep theirs. Here are the per-state KLs of
# the shipped model on the episode that ships with it (its first, collected with random actions),
# with the two clamps at the paper's 3 nats and the per-state one also at V3's 1 nat.

# %%
# NBVAL_CHECK_OUTPUT
from dreamer_lib.networks import preprocess
from dreamer_lib.rssm import kl_loss, kl_loss_per_state

agent, env, checkpoint = load_agent(MODEL, device=scale.device.type)
torch.manual_seed(0)  # the posterior's samples: the same numbers at every scale
with torch.no_grad():
    images, actions, _, _ = agent.to_batch(batch)  # the whole episode, (T, 1, ...)
    embed = agent.encoder(preprocess(images))
    posterior, prior = agent.rssm.rollout_observation(embed, actions, agent.rssm.get_initial_state(1, agent.device))
per_state = kl_divergence(posterior, prior).flatten().cpu()
paper, mean_kl = kl_loss(posterior, prior, free_nats=3.0)
print(f"{per_state.numel()} states: mean KL {mean_kl:.2f} nats, median {per_state.median():.2f}, "
      f"min {per_state.min():.2f}, max {per_state.max():.2f}")
print(f"paper, the mean clamped at 3: loss {paper:.2f}; states with a KL gradient: "
      f"{'all' if mean_kl > 3 else 'none'}")
for free in (3.0, 1.0):
    clamped, _ = kl_loss_per_state(posterior, prior, free_nats=free)
    print(f"each state clamped at {free:.0f}: loss {clamped:.2f}; states with a KL gradient: "
          f"{(per_state > free).sum().item()} of {per_state.numel()}")

# %%
fig, ax = plt.subplots(figsize=(7, 2.6))
ax.bar(np.arange(len(per_state)), per_state.numpy(), color=np.where(per_state.numpy() > 3, "C3", "C7"), width=1.0)
ax.axhline(float(mean_kl), color="C0", label=f"mean KL ({float(mean_kl):.2f}): the paper clamps it at 3")
ax.axhline(3.0, color="C3", ls="--", label="3 nats per state (red: above, keeps its gradient)")
ax.axhline(1.0, color="k", ls=":", label="1 nat per state, V3's value")
ax.set_xlabel("step of the episode")
ax.set_ylabel("KL (nats)")
ax.set_title("KL(posterior || prior) per state, shipped model, a random-action episode", fontsize=10)
ax.legend(fontsize=7)
fig.tight_layout()
plt.show()

# %% [markdown]
# On this episode the mean KL is below 3 nats, so the paper's clamp gives no state a KL gradient:
# on this batch the KL term trains neither the prior nor the posterior. Clamped per state at the
# same 3 nats, the states above the line (red: the first steps, and the frames the prior did not
# expect) keep theirs. At V3's 1 nat, every state of this episode is above the line and keeps its
# gradient, where the paper's clamp gave none.

# %% [markdown]
# ## 3. Returns on any scale: DreamerV3's return normalisation
#
# The actor maximises the lambda-returns (lesson 5) plus, in this course's `cpu` preset, an
# entropy bonus of weight 0.003. How much 0.003 weighs depends on the returns' scale: Pendulum's
# rewards lie in [-16.3, 0] per frame, DeepMind Control's in [0, 1], Atari's anywhere. That is
# why the `cpu` preset multiplies Pendulum's rewards by 0.1 (docs/provenance.md). DreamerV3
# divides the returns the actor sees by
#
# $$S = \max(1,\ \mathrm{EMA}(P_{95}) - \mathrm{EMA}(P_{5})),$$
#
# the range between the 5th and 95th percentiles of the returns, smoothed over updates: large
# returns shrink to a range of about 1, small ones are left alone (the floor of 1), and a few
# outliers do not set the scale, which a standard deviation would let them do. Here are the
# imagined returns of the shipped model, from every state of its episode.

# %%
# NBVAL_CHECK_OUTPUT
from dreamer_lib.actor_critic import compute_lambda_returns


def imagined_returns(agent, posterior):
    """The lambda-returns (H - 1, N) the actor trains on, from every posterior state (lesson 5)."""
    start = posterior.detach().reshape(-1)
    imagined, _, _ = agent.rssm.rollout_imagination(start, agent.actor, agent.config.horizon)
    reward, value = agent.reward(imagined.features), agent.critic(imagined.features)
    discount = torch.full_like(reward, agent.config.gamma)
    return compute_lambda_returns(reward[:-1], value[:-1], discount[:-1], value[-1], agent.config.lambda_)


torch.manual_seed(0)
with torch.no_grad():
    returns = imagined_returns(agent, posterior).cpu()
flat = returns.flatten()
low, high = torch.quantile(flat, torch.tensor([0.05, 0.95])).tolist()
print(f"{flat.numel()} imagined returns (reward x {agent.config.reward_scale}): mean {flat.mean():.2f}, "
      f"std {flat.std():.2f}, min {flat.min():.2f}, max {flat.max():.2f}")
print(f"5th percentile {low:.2f}, 95th {high:.2f}: range {high - low:.2f}, so S = {max(1.0, high - low):.2f}")

# %%
fig, ax = plt.subplots(figsize=(7, 2.6))
ax.hist(flat.numpy(), bins=60, color="C7")
ax.axvline(low, color="C3", label=f"5th and 95th percentiles (range {high - low:.2f})")
ax.axvline(high, color="C3")
ax.axvspan(flat.mean() - flat.std(), flat.mean() + flat.std(), color="C0", alpha=0.15,
           label=f"mean ± std ({flat.std():.2f})")
ax.set_xlabel(f"imagined lambda-return (rewards x {agent.config.reward_scale})")
ax.set_ylabel("count")
ax.set_title("The returns the shipped model's actor trains on", fontsize=10)
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# ### Exercise 8.3: `return_scale(returns, low_high, decay) -> (scale, new low_high)`
#
# *(★★☆, ~15 min)*
#
# `low_high` is a tensor `[low, high]`, the EMAs so far. Update both with this batch's 5th and
# 95th percentiles of all returns (`torch.quantile` of the flattened returns, with q in [0, 1]),
# `decay * old + (1 - decay) * new`, then return $\max(1, \text{high} - \text{low})$ of the updated
# EMAs, and the updated `low_high`. The scale is a statistic of the returns, not something the actor
# should learn to change: no gradient may flow through it.

# %%
def return_scale(returns, low_high, decay=0.99):
    """returns (H, N), low_high (2,) -> (max(1, high - low), new low_high), low and high the EMAs
    of the returns' 5th and 95th percentiles."""
    # BEGIN SOLUTION 8.3: update the EMAs of the 5th and 95th percentiles, then the floored range
    percentiles = torch.quantile(returns.detach().flatten(), torch.tensor([0.05, 0.95], device=returns.device))
    low_high = decay * low_high + (1 - decay) * percentiles
    return torch.clamp(low_high[1] - low_high[0], min=1.0), low_high
    # END SOLUTION


# %%
from dreamer_lib.course.checks.later_dreamers import check_return_scale

check_return_scale(return_scale)

# %% [markdown]
# The agent keeps `low_high` as a buffer that starts at zero (`DreamerV1.return_scale`). Below,
# your function runs over batches of imagined returns of the shipped model, as it would over
# updates: the EMA starts at 0 and reaches the returns' range only after a few hundred updates,
# since after $n$ updates its weight on the data is $1 - 0.99^n$.

# %%
low_high, history = torch.zeros(2), []
batches = scale.pick(gpu=500, cpu=500, ci=20)
rng = np.random.default_rng(0)
with torch.no_grad():
    for _ in range(batches):
        window = buffer.sample(8, 24, rng=rng)
        _, window_posterior, _ = agent.world_model_loss(*agent.to_batch(window))
        s, low_high = return_scale(imagined_returns(agent, window_posterior).cpu(), low_high)
        history.append((float(s), *low_high.tolist()))
history = np.array(history)
for n in sorted({min(10, batches), min(100, batches), batches}):
    print(f"after {n:3d} batches: low {history[n - 1, 1]:6.2f}, high {history[n - 1, 2]:6.2f}, scale {history[n - 1, 0]:.2f}"
          f"  (weight on the data: {1 - 0.99 ** n:.0%})")
S = history[-1, 0]
CPU_ENTROPY = make_config("cpu").actor_entropy
print(f"dividing the returns by S = {S:.2f} weighs an entropy bonus as multiplying it by S would without the division: "
      f"the cpu preset's {CPU_ENTROPY} would act as {CPU_ENTROPY * S:.3f}, DreamerV3's 3e-4 as {3e-4 * S:.4f}")

# %%
fig, ax = plt.subplots(figsize=(7, 2.6))
ax.plot(history[:, 1], label="EMA of the 5th percentile")
ax.plot(history[:, 2], label="EMA of the 95th percentile")
ax.plot(history[:, 0], color="k", label="scale S = max(1, high - low)")
ax.set_xlabel("batch (update)")
ax.set_ylabel("return (rewards x 0.1)")
ax.set_title("The return scale over updates, shipped model", fontsize=10)
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# With return normalisation, the actor's returns are divided by $S$, and the entropy bonus is
# not: the bonus's weight relative to the returns grows by the factor $S$ (the last line above).
# DreamerV3 pairs the normalisation with an entropy weight of $3 \cdot 10^{-4}$, and section 5's
# V3 arm does the same; with the `cpu` preset's 0.003 the bonus would weigh many times more than
# it does in the preset.
#
# ## 4. A slow critic
#
# The critic regresses $v_\psi(s_\tau)$ on lambda-returns that are built from $v_\psi$ itself
# (lesson 5): each of its steps moves its own target. DreamerV2 and V3 build the returns from a
# *slow* copy of the critic whose weights follow the critic's by an EMA after every update,
# $\bar\psi \leftarrow d\,\bar\psi + (1 - d)\,\psi$ with $d = 0.98$ (V3), so the target moves
# about 50 times more slowly than the critic.
#
# ### Exercise 8.4: `update_slow_critic(slow, critic, decay)`
#
# *(★☆☆, ~5 min)*
#
# Change `slow`'s parameters in place (the agent keeps the module it has); the critic does not
# change, and no gradient is involved.

# %%
def update_slow_critic(slow, critic, decay=0.98):
    """slow <- decay * slow + (1 - decay) * critic, parameter by parameter, in place."""
    # BEGIN SOLUTION 8.4: move each slow parameter 1 - decay of the way to the critic's, in place
    with torch.no_grad():
        for slow_param, param in zip(slow.parameters(), critic.parameters()):
            slow_param.lerp_(param, 1 - decay)
    # END SOLUTION


# %%
from dreamer_lib.course.checks.later_dreamers import check_update_slow_critic

check_update_slow_critic(update_slow_critic)

# %% [markdown]
# Here is what the slow copy does to a target that jumps around. A one-weight critic is trained by
# SGD on targets that drift slowly and carry noise; its slow copy follows it with your function.

# %%
torch.manual_seed(0)
critic = torch.nn.Linear(1, 1, bias=False)
slow = torch.nn.Linear(1, 1, bias=False).requires_grad_(False)
slow.load_state_dict(critic.state_dict())
optimizer = torch.optim.SGD(critic.parameters(), lr=0.1)
trace = []
for step in range(300):
    target = np.sin(step / 50) + 0.5 * np.random.default_rng(step).normal()
    loss = (critic(torch.ones(1, 1)) - target).pow(2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    update_slow_critic(slow, critic, 0.98)
    trace.append((target, critic.weight.item(), slow.weight.item()))
trace = np.array(trace)
print(f"step-to-step change: critic {np.abs(np.diff(trace[:, 1])).mean():.3f}, slow copy "
      f"{np.abs(np.diff(trace[:, 2])).mean():.3f}")
fig, ax = plt.subplots(figsize=(7, 2.4))
ax.plot(trace[:, 0], color="C7", lw=0.5, label="noisy target")
ax.plot(trace[:, 1], color="C0", label="critic")
ax.plot(trace[:, 2], color="C3", label="slow copy, d = 0.98")
ax.set_xlabel("update")
ax.set_ylabel("value")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 5. What the changes do on pixel Pendulum, measured
#
# Four arms, and a fifth that takes one part of the last alone, each 3 seeds of 50k env frames at
# the `cpu` preset, evaluated every 5k frames with 20 episodes of the actor's mode (the protocol
# of benchmarks/learn.py):
#
# | arm | flags on top of `--preset cpu` |
# |---|---|
# | V1 | none |
# | V2 world model | `--latent-classes 32 --stoch-size 32 --kl-balance 0.8` |
# | V3 behaviour | `--return-normalization --actor-entropy 3e-4 --slow-critic-decay 0.98` |
# | all together | all of the above, with `--free-nats-per-state --free-nats 1` |
# | free bits alone | `--free-nats-per-state --free-nats 1` |
#
# The command for one arm, e.g. the V2 world model:
# `python benchmarks/learn.py --preset cpu --seeds 0 1 2 --total-frames 50000 --eval-episodes 20
# --root runs/ablation/v2 --latent-classes 32 --stoch-size 32 --kl-balance 0.8`. The V1 arm is
# the `cpu` preset's 5 seeds of issue 24, under this same protocol (docs/results.md).
# The cell below reads the per-seed curves from `benchmarks/results/`, times one update of each
# arm on this machine, and prints for each arm, over seeds 0-2: the first evaluation where their
# mean return reaches -250 (with the updates by then), each seed's mean over its last 3
# evaluations (40k, 45k, 50k), and the ms per update. It draws the arms side by side: each
# seed a thin line, the mean of seeds 0-2 in black.

# %%
import csv
import pathlib

import dreamer_lib
from dreamer_lib.course.costs import update_times

RESULTS = pathlib.Path(dreamer_lib.__file__).resolve().parent.parent / "benchmarks" / "results"
V2 = dict(latent_classes=32, stoch_size=32, kl_balance=0.8)
V3 = dict(return_normalization=True, actor_entropy=3e-4, slow_critic_decay=0.98)
FREE_BITS = dict(free_nats_per_state=True, free_nats=1.0)
ARMS = {"V1": ("alr4e-5-ent0003-ie4", {}), "V2 world model": ("ablation-v2", V2),
        "V3 behaviour": ("ablation-v3", V3), "all together": ("ablation-all", {**V2, **V3, **FREE_BITS}),
        "free bits alone": ("ablation-freebits", FREE_BITS)}
SEEDS = (0, 1, 2)  # the seeds every arm runs; V1 has two more, drawn but not in the table
curves = {}  # arm -> {seed: (env frames, updates, eval returns)}
for arm, (name, _) in ARMS.items():
    for path in sorted(RESULTS.glob(f"pendulum_cpu-{name}_*_seed*_eval.csv")) if RESULTS.exists() else []:
        with path.open() as f:
            rows = list(csv.DictReader(f))
        seed = int(path.name.split("_seed")[1].split("_")[0])
        curves.setdefault(arm, {})[seed] = tuple(np.array([float(r[k]) for r in rows])
                                                 for k in ("env_frames", "updates", "return_mean"))

# ms per update of each arm, timed here: alternating rounds on one random batch, so a busy
# machine slows every arm alike (benchmarks/update_cost.py times more settings the same way).
preset, rounds = scale.pick(gpu="cpu", cpu="cpu", ci="ci"), scale.pick(gpu=5, cpu=5, ci=1)
ms = update_times({arm: make_config(preset, device=scale.device.type, **flags) for arm, (_, flags) in ARMS.items()},
                  rounds)

# Each arm over the seeds every arm runs: its eval frames, updates and mean return at each evaluation.
means = {}
for arm, seeds in curves.items():
    common = [seed for seed in SEEDS if seed in seeds]
    if common:
        frames, updates, _ = seeds[common[0]]
        means[arm] = (common, frames, updates, np.mean([seeds[seed][2] for seed in common], axis=0))

print(f"{'arm':>15} | seeds | first mean >= -250 (updates) | last-3 mean per seed | over seeds | "
      f"ms/update ({preset} preset, here)")
for arm in ARMS:
    cells, common = ["not measured yet", "", ""], []
    if arm in means:
        common, frames, updates, mean = means[arm]
        reached = np.flatnonzero(mean >= -250)
        last3 = [curves[arm][seed][2][-3:].mean() for seed in common]
        cells = [f"{frames[reached[0]]:.0f} env frames ({updates[reached[0]]:.0f})" if len(reached) else "never",
                 ", ".join(f"{v:.0f}" for v in last3), f"{np.mean(last3):.0f}"]
    print(f"{arm:>15} | {len(common)} of {len(SEEDS)} | {cells[0]:>28} | {cells[1]:>20} | {cells[2]:>10} | "
          f"{1000 * np.median(ms[arm]):.0f}")

fig, axes = plt.subplots(1, len(ARMS), figsize=(15, 3), sharey=True)
for ax, (i, arm) in zip(axes, enumerate(ARMS)):
    seeds = curves.get(arm, {})
    for seed, (frames, _, returns) in sorted(seeds.items()):
        ax.plot(frames, returns, color=f"C{i}", lw=1, alpha=0.6 if seed in SEEDS else 0.25)
    if arm in means:
        common, frames, _, mean = means[arm]
        ax.plot(frames, mean, color="k", lw=2,
                label=f"mean of seeds {', '.join(map(str, common))}" if len(common) > 1 else f"seed {common[0]}")
        ax.legend(fontsize=7, loc="lower right")
    ax.axhline(-250, color="gray", ls="--", lw=0.8)
    ax.set_xlim(0, 52_000)
    ax.set_xticks([0, 25_000, 50_000], ["0", "25k", "50k"])
    ax.set_title(f"{arm} ({len(seeds)} seed{'s' * (len(seeds) > 1)})" if seeds else f"{arm}: not measured yet", fontsize=9)
    ax.set_xlabel("env frames")
axes[0].set_ylabel("eval return (20 episodes)")
fig.tight_layout()
plt.show()

# %% [markdown]
# What the committed run shows (3 seeds per arm; V1's seeds 3 and 4 are drawn pale):
#
# - V1: the mean of seeds 0-2 reaches -250 at 40k env frames (4,000 updates); their last-3 means
#   are -202, -259 and -196 (mean -219).
# - V2 world model: its seeds disagree. Two are near -250 by 10k-15k env frames, before any V1
#   seed, and end at -213 and -170; the third ends at -638, far below every V1 seed. Their mean
#   never reaches -250 by 50k env frames.
# - V3 behaviour: one seed (-218) ends among V1's, two end below every V1 seed (-353 and -609). The
#   mean of the three never reaches -250.
# - All together: all three seeds are above -250 from 20k env frames (2,000 updates) on, half the
#   frames V1's mean needs, and stay there; their last-3 means, -192, -197 and -164 (mean -185),
#   are each above V1's mean.
# - Free bits alone, DreamerV1 with only the KL clamped per state at 1 nat: the mean reaches -250
#   at 25k env frames (2,500 updates) and stays above it; the last-3 means, -186, -188 and -158
#   (mean -177), are each above every V1 seed's.
# - Cost, timed above on this machine: the discrete latent makes an update about 1.7x V1's (V2 and
#   all together); the V3 behaviour changes and the free bits cost almost nothing.
#
# So on this task the V3 behaviour changes alone do not help: over 3 seeds they learn later and
# end lower than DreamerV1 with the `cpu` preset. The V2 world model alone learns early on two
# seeds of three and not on the third. All the changes together learned on every seed, twice as
# fast as V1, and held, and free bits per state alone did almost as well at V1's price: most of
# the gain here comes from the KL term, not from the discrete latent or the actor's changes.
# Three seeds cannot tell 20k from 25k env frames apart, and the free-bits arm changes two
# things at once, the clamp per state instead of the batch mean and 1 nat instead of 3, which
# these runs do not separate.
#
# ## Summary
#
# - DreamerV2's discrete latent samples one class per categorical and passes the probabilities'
#   gradient straight through the sample: $z = \text{sample} + p - \operatorname{sg}(p)$, with 1%
#   of the uniform mixed into $p$ (V3) so that the KL stays finite. Straight-through is biased for
#   a loss that is not linear in $z$, and without it the latent gets no gradient.
# - KL balancing gives the paper's KL in value and splits its gradient: $\alpha = 0.8$ of it to
#   the prior, 0.2 to the posterior, so the prior moves towards the posterior faster than the
#   posterior towards the prior.
# - Free nats per state keep the KL gradient of the states above the line, where the paper's
#   clamp of the mean gives it to every state or to none.
# - Return normalisation divides the actor's returns by $\max(1, \text{EMA}(P_{95}) -
#   \text{EMA}(P_5))$, a scale outliers do not set and small returns are not blown up by; the
#   scale carries no gradient.
# - A slow critic builds the returns from an EMA of the critic's weights.
# - On pixel Pendulum (3 seeds per arm, 50k env frames, section 5): the V3 behaviour changes alone
#   learned later than DreamerV1, the V2 world model alone learned early on two seeds and not on
#   the third, all the changes together reached -250 on every seed by 20k env frames, half V1's,
#   at about 1.7x V1's cost per update, and free bits per state alone reached it at 25k, at V1's
#   cost.
# - Every change is a `dreamer-train` flag (the table at the top), off in every preset.

# %%
print(f"Lesson 8 ran in {scale.elapsed()} at scale {scale.name}")
