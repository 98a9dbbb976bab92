"""Behaviour of the core math against references written out here (plain Python or numpy).

Each test recomputes what a function should return from its inputs (or from a module's own
weights) without calling the function under test, so that a changed line of the math fails one
of them (tools/mutation_check.py measures that). What tests/test_math.py, test_buffer.py and
test_agent.py already check well (lambda-returns against a loop, the tanh-Gaussian's density,
windows from one episode) is not repeated here.

Conventions: time-major (T, B, ...); an episode stores at index t the observation o_t, the action
a_{t-1} that led to it (zeros at reset) and the reward r_t.
"""
from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from dreamer_lib.actor_critic import Actor, compute_actor_loss, compute_critic_loss
from dreamer_lib.agent import DreamerV1
from dreamer_lib.buffer import ReplayBuffer
from dreamer_lib.config import make_config
from dreamer_lib.envs import run_episode
from dreamer_lib.evaluate import evaluate
from dreamer_lib.rssm import RSSM, RSSMState, kl_divergence, kl_loss, kl_loss_per_state

ACTIONS = 2


# ============================================================================ numpy helpers
def np64(x) -> np.ndarray:
    return x.detach().double().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, np.float64)


def linear(layer: nn.Linear, x: np.ndarray) -> np.ndarray:
    out = x @ np64(layer.weight).T
    return out + np64(layer.bias) if layer.bias is not None else out


def elu(x):
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0)))


def softplus(x):
    return np.logaddexp(0.0, x)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def gru_cell(cell: nn.GRUCell, x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """PyTorch's GRUCell written out (gates ordered r, z, n)."""
    gi, gh = x @ np64(cell.weight_ih).T + np64(cell.bias_ih), h @ np64(cell.weight_hh).T + np64(cell.bias_hh)
    (ir, iz, in_), (hr, hz, hn) = np.split(gi, 3, -1), np.split(gh, 3, -1)
    r, z = sigmoid(ir + hr), sigmoid(iz + hz)
    n = np.tanh(in_ + r * hn)
    return (1 - z) * n + z * h


def mlp(layers: nn.Sequential, x: np.ndarray) -> np.ndarray:
    """A DenseHead's net: Linear, ELU, ..., Linear."""
    for module in layers:
        x = linear(module, x) if isinstance(module, nn.Linear) else elu(x)
    return x


def kl_numpy(qm, qs, pm, ps):
    """KL(N(qm, qs) || N(pm, ps)) for diagonal Gaussians, summed over the last axis."""
    qm, qs, pm, ps = map(np64, (qm, qs, pm, ps))
    return (np.log(ps / qs) + (qs ** 2 + (qm - pm) ** 2) / (2 * ps ** 2) - 0.5).sum(-1)


def weights_by_hand(discounts: np.ndarray) -> np.ndarray:
    """w_0 = 1, w_t = d_0 * ... * d_{t-1}."""
    w = np.ones_like(discounts)
    for t in range(1, len(discounts)):
        w[t] = w[t - 1] * discounts[t - 1]
    return w


def returns_by_hand(rewards, values, discounts, bootstrap, lam):
    horizon = len(rewards)
    out, last = np.zeros_like(rewards), bootstrap
    for t in reversed(range(horizon)):
        next_value = values[t + 1] if t + 1 < horizon else bootstrap
        last = rewards[t] + discounts[t] * ((1 - lam) * next_value + lam * last)
        out[t] = last
    return out


def state_equal(a: RSSMState, b: RSSMState) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b))


def make_agent(seed=0, **overrides) -> DreamerV1:
    torch.manual_seed(seed)
    return DreamerV1(make_config("ci", fast=False, **overrides), action_size=ACTIONS, device="cpu")


# ============================================================================ KL and free nats
def gaussian_state(mean, std):
    return RSSMState(mean, std, torch.zeros_like(mean), torch.zeros(*mean.shape[:-1], 2, dtype=mean.dtype))


def unequal_std_states(seed=0, shape=(3, 4, 5)):
    g = torch.Generator().manual_seed(seed)
    qm, pm = torch.randn(shape, generator=g, dtype=torch.float64), torch.randn(shape, generator=g, dtype=torch.float64)
    qs = torch.rand(shape, generator=g, dtype=torch.float64) * 0.5 + 0.1  # narrow posterior
    ps = torch.rand(shape, generator=g, dtype=torch.float64) * 2.0 + 1.0  # wide prior
    return gaussian_state(qm, qs), gaussian_state(pm, ps)


def test_kl_with_unequal_stds_matches_numpy_and_is_asymmetric():
    q, p = unequal_std_states()
    got = kl_divergence(q, p)
    want = kl_numpy(q.mean, q.std, p.mean, p.std)
    assert got.shape == (3, 4)
    np.testing.assert_allclose(np64(got), want, rtol=1e-10)
    reverse = kl_numpy(p.mean, p.std, q.mean, q.std)
    assert np.all(np.abs(reverse - want) > 0.1)  # asymmetric on these inputs, by a lot
    np.testing.assert_allclose(np64(kl_divergence(p, q)), reverse, rtol=1e-10)
    # equal means: only the std terms remain, log(ps/qs) + qs^2 / (2 ps^2) - 1/2 per dimension
    same_mean = kl_divergence(gaussian_state(p.mean, q.std), p)
    np.testing.assert_allclose(np64(same_mean), kl_numpy(p.mean, q.std, p.mean, p.std), rtol=1e-10)


def test_kl_loss_is_mean_kl_of_posterior_from_prior():
    posterior, prior = unequal_std_states(seed=1)
    clamped, kl = kl_loss(posterior, prior, free_nats=0.0)
    want = kl_numpy(posterior.mean, posterior.std, prior.mean, prior.std).mean()
    assert kl.item() == pytest.approx(want, rel=1e-10)
    assert clamped.item() == pytest.approx(want, rel=1e-10)
    wrong_way = kl_numpy(prior.mean, prior.std, posterior.mean, posterior.std).mean()
    assert abs(wrong_way - want) > 0.5


PER_ELEMENT_KL = np.array([[1.0, 6.0, 1.0], [1.0, 9.5, 1.0]])  # (T, B) = (2, 3), mean 3.25


def states_with_kl(per_element):
    """(mu, q, p): one-dimensional states, q = N(mu, 1) and p = N(0, 1.5^2), whose KL(q || p) is
    exactly `per_element`: KL = log(ps/qs) + (qs^2 + mu^2) / (2 ps^2) - 1/2, solved for mu."""
    q_std = torch.full((*per_element.shape, 1), 1.0, dtype=torch.float64)
    p_std = torch.full((*per_element.shape, 1), 1.5, dtype=torch.float64)
    base = math.log(1.5) + 1 / (2 * 2.25) - 0.5
    mu = torch.tensor(np.sqrt((per_element - base) * 2 * 2.25)[..., None], requires_grad=True)
    return mu, gaussian_state(mu, q_std), gaussian_state(torch.zeros_like(q_std), p_std)


def test_free_nats_clamp_the_mean_over_batch_and_time_not_each_element():
    """(T, B) = (2, 3) elements with KL 1, 6, 1 / 1, 9.5, 1 (mean 3.25 > 3 free nats). Clamping the
    mean keeps every element's gradient, each 1/6 of its own KL gradient; clamping each element
    would give (4 * 3 + 6 + 9.5) / 6 = 4.58 and no gradient for the small ones."""
    mu, q, p = states_with_kl(PER_ELEMENT_KL)
    clamped, kl = kl_loss(q, p, free_nats=3.0)
    assert kl.item() == pytest.approx(3.25, rel=1e-9)
    assert clamped.item() == pytest.approx(3.25, rel=1e-9)
    (grad,) = torch.autograd.grad(clamped, mu)
    # d KL / d mu = mu / ps^2, averaged over 6 elements
    np.testing.assert_allclose(np64(grad), np64(mu) / 2.25 / 6, rtol=1e-9)
    # below the line: the mean is clamped, so no element gets a gradient (per element: the two
    # large ones would keep theirs)
    clamped, _ = kl_loss(q, p, free_nats=4.0)
    assert clamped.item() == 4.0
    (grad,) = torch.autograd.grad(clamped, mu, allow_unused=True)
    assert grad is None or torch.all(grad == 0)


def test_free_nats_per_state_clamp_each_state_before_the_mean():
    """free_nats_per_state (DreamerV3's free bits, off in the paper): the same KLs 1, 6, 1 / 1, 9.5, 1
    as above, each clamped at 3 before the mean: (4 * 3 + 6 + 9.5) / 6 = 4.583, and only the two
    states above the line keep a gradient, each 1/6 of its own KL gradient."""
    mu, q, p = states_with_kl(PER_ELEMENT_KL)
    clamped, kl = kl_loss_per_state(q, p, free_nats=3.0)
    assert kl.item() == pytest.approx(3.25, rel=1e-9)  # the logged KL is the unclamped mean
    assert clamped.item() == pytest.approx(np.maximum(PER_ELEMENT_KL, 3.0).mean(), rel=1e-9)
    (grad,) = torch.autograd.grad(clamped, mu)
    above = torch.tensor(PER_ELEMENT_KL > 3.0)[..., None]
    np.testing.assert_allclose(np64(grad), np64(torch.where(above, mu / 2.25 / 6, 0.0)), rtol=1e-9)


def test_the_world_model_loss_with_free_nats_per_state_clamps_each_states_kl(batch):
    """The agent's KL term with free_nats_per_state: each (t, b) state's KL, from the posterior and
    prior of a rollout recomputed on a twin with the same noise, clamped at free_nats, then the
    mean. free_nats sits between the states' KLs, so a clamp of the mean would differ."""
    images, actions, rewards, discounts = batch
    agent, twin = make_agent(free_nats_per_state=True), make_agent()
    torch.manual_seed(5)
    embed = twin.encoder(preprocess_by_hand(images.numpy()))
    posterior, prior = twin.rssm.rollout_observation(embed, actions, twin.rssm.get_initial_state(images.shape[1]))
    per_state = kl_numpy(posterior.mean, posterior.std, prior.mean, prior.std)
    free_nats = float(np.median(per_state))
    agent.config.free_nats = free_nats
    torch.manual_seed(5)
    loss, _, metrics = agent.world_model_loss(images, actions, rewards, discounts)
    kl_term = (loss - metrics["image_loss"] - metrics["reward_loss"]).item()
    assert kl_term == pytest.approx(np.maximum(per_state, free_nats).mean(), abs=1e-4)  # beside ~1e4 nats of image loss
    assert abs(kl_term - max(per_state.mean(), free_nats)) > 1e-2  # not the paper's clamp of the mean
    assert metrics["kl"].item() == pytest.approx(per_state.mean(), rel=1e-5)


# ============================================================================ actor and critic losses
def loss_inputs(seed=0, horizon=6, n=4):
    rng = np.random.default_rng(seed)
    returns = rng.normal(size=(horizon, n)) * 3
    values = rng.normal(size=(horizon, n)) * 3
    discounts = rng.uniform(0.3, 1.0, size=(horizon, n))
    discounts[2, 1] = 0.0  # an imagined episode end: later steps weigh nothing
    return returns, values, discounts


def test_actor_loss_against_numpy_with_varied_discounts():
    returns, _, discounts = loss_inputs()
    w = weights_by_hand(discounts)
    assert w[0].tolist() == [1.0] * 4 and np.all(w[3:, 1] == 0)
    R = torch.tensor(returns, requires_grad=True)
    loss = compute_actor_loss(R, torch.tensor(discounts))
    assert loss.item() == pytest.approx(-(w * returns).mean(), rel=1e-10)
    (grad,) = torch.autograd.grad(loss, R)
    np.testing.assert_allclose(np64(grad), -w / returns.size, rtol=1e-10)


def test_critic_loss_against_numpy_with_varied_discounts_and_a_fixed_target():
    returns, values, discounts = loss_inputs(seed=1)
    w = weights_by_hand(discounts)
    V, R = torch.tensor(values, requires_grad=True), torch.tensor(returns, requires_grad=True)
    loss = compute_critic_loss(V, R, torch.tensor(discounts))
    assert loss.item() == pytest.approx((w * 0.5 * (values - returns) ** 2).mean(), rel=1e-10)
    grad_v, grad_r = torch.autograd.grad(loss, [V, R], allow_unused=True)
    np.testing.assert_allclose(np64(grad_v), w * (values - returns) / values.size, rtol=1e-10)
    assert grad_r is None or torch.all(grad_r == 0)


# ============================================================================ RSSM
def small_rssm(seed=0, min_std=0.1):
    torch.manual_seed(seed)
    return RSSM(action_size=2, embed_size=6, stoch_size=3, deter_size=5, hidden_size=7, min_std=min_std)


def random_state(batch=4, seed=1, stoch=3, deter=5):
    g = torch.Generator().manual_seed(seed)
    return RSSMState(torch.randn(batch, stoch, generator=g), torch.rand(batch, stoch, generator=g) + 0.1,
                     torch.randn(batch, stoch, generator=g), torch.randn(batch, deter, generator=g))


def gaussian_by_hand(stats: np.ndarray, min_std: float):
    mean, raw = np.split(stats, 2, -1)
    return mean, softplus(raw) + min_std


def prior_by_hand(rssm: RSSM, prev: RSSMState, action: torch.Tensor):
    x = elu(linear(rssm.input_layer, np.concatenate([np64(prev.stoch), np64(action)], -1)))
    deter = gru_cell(rssm.gru, x, np64(prev.deter))
    stats = linear(rssm.prior_stats, elu(linear(rssm.prior_hidden, deter)))
    return (*gaussian_by_hand(stats, rssm.min_std), deter)


def posterior_by_hand(rssm: RSSM, deter: np.ndarray, embed: torch.Tensor):
    x = elu(linear(rssm.posterior_hidden, np.concatenate([deter, np64(embed)], -1)))
    return gaussian_by_hand(linear(rssm.posterior_stats, x), rssm.min_std)


def test_prior_step_by_hand_from_the_module_weights():
    """h_t = GRU(h_{t-1}, elu(W [z_{t-1}, a_{t-1}])), stats = W2 elu(W1 h_t), std = softplus + min_std,
    and the sample is mean + std * eps with the torch noise of the same seed."""
    rssm, prev = small_rssm(), random_state()
    action = torch.randn(4, 2)
    torch.manual_seed(5)
    prior = rssm.prior(prev, action)
    torch.manual_seed(5)
    eps = np64(torch.randn(4, 3))
    mean, std, deter = prior_by_hand(rssm, prev, action)
    for got, want in ((prior.deter, deter), (prior.mean, mean), (prior.std, std), (prior.stoch, mean + std * eps)):
        np.testing.assert_allclose(np64(got), want, rtol=1e-5, atol=1e-6)


def test_posterior_uses_the_priors_deter_and_the_embed():
    rssm, prev = small_rssm(), random_state()
    action, embed = torch.randn(4, 2), torch.randn(4, 6)
    torch.manual_seed(6)
    posterior, prior = rssm.obs_step(prev, action, embed)
    torch.manual_seed(6)
    torch.randn(4, 3)  # the prior's noise
    eps = np64(torch.randn(4, 3))
    _, _, deter = prior_by_hand(rssm, prev, action)
    mean, std = posterior_by_hand(rssm, deter, embed)
    np.testing.assert_allclose(np64(prior.deter), deter, rtol=1e-5, atol=1e-6)
    assert torch.equal(posterior.deter, prior.deter)  # the same h_t, not h_{t-1}
    np.testing.assert_allclose(np64(posterior.mean), mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np64(posterior.std), std, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np64(posterior.stoch), mean + std * eps, rtol=1e-5, atol=1e-6)
    # posterior() alone, on any prior state, reads only its deter
    other = RSSMState(prior.mean * 0 + 9, prior.std * 0 + 9, prior.stoch * 0 + 9, prior.deter)
    alone = rssm.posterior(other, embed)
    np.testing.assert_allclose(np64(alone.mean), mean, rtol=1e-5, atol=1e-6)


def test_min_std_is_added_after_softplus():
    rssm = small_rssm(min_std=0.25)
    with torch.no_grad():  # push the raw std of half the units far negative: softplus ~ 0 there
        rssm.prior_stats.bias[3:5] = -40.0
        rssm.prior_stats.bias[5] = 2.0
    prior = rssm.prior(random_state(), torch.randn(4, 2))
    assert torch.all(prior.std >= 0.25)
    np.testing.assert_allclose(np64(prior.std[:, :2]), 0.25, rtol=1e-6)  # softplus(-40) + 0.25
    _, std, _ = prior_by_hand(rssm, random_state(), torch.zeros(4, 2))
    assert np.all(std[:, 2] > 0.25 + 1.0)


def rollout(rssm, embeds, actions, seed=0):
    torch.manual_seed(seed)
    return rssm.rollout_observation(embeds, actions, rssm.get_initial_state(embeds.shape[1]))


def changed_steps(a: RSSMState, b: RSSMState) -> list[bool]:
    return [not all(torch.equal(x[t], y[t]) for x, y in zip(a, b)) for t in range(a.mean.shape[0])]


def test_rollout_observation_pairs_actions_t_with_embeds_t():
    """actions[t] is a_{t-1}, the action that led to o_t: it enters the step that filters embeds[t]."""
    rssm, T, k = small_rssm(), 6, 3
    g = torch.Generator().manual_seed(0)
    embeds, actions = torch.randn(T, 2, 6, generator=g), torch.randn(T, 2, 2, generator=g)
    posterior, prior = rollout(rssm, embeds, actions)
    assert posterior.mean.shape == (T, 2, 3) and prior.deter.shape == (T, 2, 5)

    moved = actions.clone()
    moved[k] += 1.0
    post2, prior2 = rollout(rssm, embeds, moved)
    assert changed_steps(posterior, post2) == [t >= k for t in range(T)]
    assert changed_steps(prior, prior2) == [t >= k for t in range(T)]

    seen = embeds.clone()
    seen[k] += 1.0
    post3, prior3 = rollout(rssm, seen, actions)
    assert changed_steps(posterior, post3) == [t >= k for t in range(T)]
    assert changed_steps(prior, prior3) == [t > k for t in range(T)]  # the prior at k has not seen o_k


def test_rollout_observation_first_step_starts_from_the_given_state():
    rssm = small_rssm()
    g = torch.Generator().manual_seed(1)
    embeds, actions = torch.randn(3, 4, 6, generator=g), torch.randn(3, 4, 2, generator=g)
    start = random_state()
    torch.manual_seed(2)
    posterior, prior = rssm.rollout_observation(embeds, actions, start)
    _, _, deter0 = prior_by_hand(rssm, start, actions[0])
    np.testing.assert_allclose(np64(prior.deter[0]), deter0, rtol=1e-5, atol=1e-6)
    mean0, _ = posterior_by_hand(rssm, deter0, embeds[0])
    np.testing.assert_allclose(np64(posterior.mean[0]), mean0, rtol=1e-5, atol=1e-6)
    # step 1 continues from the posterior sample of step 0, not from the prior's
    _, _, deter1 = prior_by_hand(rssm, RSSMState(*(x[0] for x in posterior)), actions[1])
    np.testing.assert_allclose(np64(prior.deter[1]), deter1, rtol=1e-5, atol=1e-6)


class RecordingActor:
    def __init__(self, actor):
        self.actor, self.inputs = actor, []

    def __call__(self, features):
        self.inputs.append(features)
        return self.actor(features)


def imagine_by_hand(rssm, start, actor, horizon, detach=True):
    state, states, actions = start, [], []
    for _ in range(horizon):
        features = state.features.detach() if detach else state.features
        action = actor(features).rsample()
        state = rssm.prior(state, action)
        states.append(state)
        actions.append(action)
    return RSSMState(*(torch.stack(xs) for xs in zip(*states))), torch.stack(actions)


def test_rollout_imagination_detaches_the_actor_input_and_omits_the_start():
    rssm = small_rssm()
    torch.manual_seed(3)
    actor = Actor(feature_size=8, action_size=2, units=8, init_std=0.5)
    start = RSSMState(*(x.requires_grad_() for x in random_state()))
    recorder = RecordingActor(actor)
    torch.manual_seed(4)
    imagined, actions, _ = rssm.rollout_imagination(start, recorder, 5)
    assert imagined.mean.shape == (5, 4, 3)  # horizon steps, the start not among them
    assert len(recorder.inputs) == 5
    assert torch.equal(recorder.inputs[0], start.features.detach())  # the first action is taken at the start
    assert not any(x.requires_grad for x in recorder.inputs)

    torch.manual_seed(4)
    want, want_actions = imagine_by_hand(rssm, start, actor, 5)
    assert state_equal(imagined, want)
    assert torch.equal(actions, want_actions)  # actions[t] is the one taken in the state before states[t]
    # the actor's parameters get gradient only through the actions: the detached rollout's gradient
    params = list(actor.parameters())
    got = torch.autograd.grad(imagined.features.pow(2).sum(), params)
    reference = torch.autograd.grad(want.features.pow(2).sum(), params)
    for g, r in zip(got, reference):
        torch.testing.assert_close(g, r)
    torch.manual_seed(4)
    undetached, _ = imagine_by_hand(rssm, start, actor, 5, detach=False)
    leaked = torch.autograd.grad(undetached.features.pow(2).sum(), params)
    assert any(not torch.allclose(g, r) for g, r in zip(leaked, reference))  # the check can fail


# ============================================================================ the actor's distribution
def test_actor_distribution_by_hand_from_its_layers():
    torch.manual_seed(0)
    actor = Actor(feature_size=6, action_size=3, units=8, mean_scale=2.0, init_std=3.0, min_std=0.05)
    with torch.no_grad():
        actor.net[-1].weight.mul_(20)  # large raw outputs: the tanh bound and softplus are non-linear here
        actor.net[-1].bias[3] = -12.0  # the first std near its floor
    features = torch.randn(16, 6)
    raw = mlp(actor.net, np64(features))
    raw_mean, raw_std = raw[:, :3], raw[:, 3:]
    mean = 2.0 * np.tanh(raw_mean / 2.0)
    std = softplus(raw_std + math.log(math.exp(3.0) - 1)) + 0.05
    dist = actor(features)
    np.testing.assert_allclose(np64(dist.normal.loc), mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np64(dist.normal.scale), std, rtol=1e-5, atol=1e-6)
    assert np.abs(raw_mean).max() > 4  # the bound matters
    assert std.min() < 0.2  # min_std matters
    torch.manual_seed(1)
    action = dist.rsample()
    torch.manual_seed(1)
    eps = np64(torch.randn(16, 3))
    np.testing.assert_allclose(np64(action), np.tanh(mean + std * eps), rtol=1e-5, atol=1e-6)


# ============================================================================ acting
def frames(n=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 64, 64, 3), dtype=np.uint8)


def preprocess_by_hand(image: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.moveaxis(image, -1, -3).astype(np.float32) / 255.0 - 0.5)


def nonzero_policy_state(agent):
    latent, _ = agent.initial_policy_state()
    return latent, torch.tensor([[0.6, -0.4]])


def test_policy_without_exploration_takes_the_mode_of_the_filtered_state():
    agent = make_agent(actor_init_std=0.3)
    image, state = frames(1)[0], nonzero_policy_state(agent)
    torch.manual_seed(11)
    action, (latent, fed_back) = agent.policy(image, state, explore=False)
    with torch.no_grad():
        torch.manual_seed(11)
        embed = agent.encoder(preprocess_by_hand(image)[None])
        posterior, _ = agent.rssm.obs_step(state[0], state[1], embed)
        mode = agent.actor(posterior.features).mode()
    assert state_equal(latent, posterior)
    np.testing.assert_array_equal(action, mode[0].numpy())
    np.testing.assert_array_equal(fed_back.numpy(), mode.numpy())
    torch.manual_seed(11)
    explored, _ = agent.policy(image, state, explore=True)
    assert not np.allclose(explored, action)


def test_policy_with_exploration_adds_gaussian_noise_to_a_sample():
    agent = make_agent(actor_init_std=0.3, expl_noise=0.2)
    image, state = frames(1, seed=1)[0], nonzero_policy_state(agent)
    torch.manual_seed(12)
    action, (latent, fed_back) = agent.policy(image, state, explore=True)
    with torch.no_grad():
        torch.manual_seed(12)
        embed = agent.encoder(preprocess_by_hand(image)[None])
        posterior, _ = agent.rssm.obs_step(state[0], state[1], embed)
        dist = agent.actor(posterior.features)
        sample = np64(dist.rsample())
        noise = np64(torch.randn(1, ACTIONS))
    want = np.clip(sample + 0.2 * noise, -1, 1)
    assert np.all(np.abs(want) < 1)  # not clipped: the noise is visible
    np.testing.assert_allclose(action, want[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np64(fed_back), want, rtol=1e-5, atol=1e-6)
    assert state_equal(latent, posterior)


class TaggedEnv(gym.Env):
    """Frames carry (episode, step) in pixel (0, 0); reward r = 10 * episode + step; an episode
    ends after `lengths[episode]` steps, terminated, or truncated (a time limit) for the episodes
    listed in `truncated`."""

    def __init__(self, lengths=(3, 2, 4), truncated=()):
        self.lengths, self.truncated, self.episode, self.t = lengths, truncated, -1, 0
        self.action_space = gym.spaces.Box(-1.0, 1.0, (ACTIONS,), np.float32)
        self.observation_space = gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
        self.actions = []

    def frame(self):
        image = np.zeros((64, 64, 3), np.uint8)
        image[0, 0, 0], image[0, 0, 1] = self.episode, self.t
        return image

    def reset(self, *, seed=None, options=None):
        self.episode, self.t = self.episode + 1, 0
        return self.frame(), {}

    def step(self, action):
        self.actions.append(np.array(action))
        self.t += 1
        done = self.t >= self.lengths[self.episode]
        cut = done and self.episode in self.truncated
        return self.frame(), float(10 * self.episode + self.t), done and not cut, cut, {}


def test_run_episode_starts_from_the_given_state_and_stores_aligned_rows():
    env, calls = TaggedEnv(truncated=(1,)), []

    def policy(image, state):
        calls.append((int(image[0, 0, 0]), int(image[0, 0, 1]), state))
        step = int(image[0, 0, 1])
        return np.array([0.1 * step, -0.1 * step - 0.05], np.float32), ("after", step, state)

    initial = ("initial",)
    for episode_index in range(3):
        episode = run_episode(env, policy, initial)
        these = [c for c in calls if c[0] == episode_index]
        assert these[0][2] is initial  # each episode starts from the given state
        for (_, step, state), (_, _, previous) in zip(these[1:], these[:-1]):
            assert state[:2] == ("after", step - 1) and state[2] is previous  # carried within the episode
        L = env.lengths[episode_index]
        assert len(these) == L and len(episode["image"]) == L + 1
        assert episode["image"][:, 0, 0, 1].tolist() == list(range(L + 1))  # o_t at row t
        assert np.all(episode["action"][0] == 0)  # zeros at reset
        for t in range(1, L + 1):  # row t holds a_{t-1}, the action taken at o_{t-1}
            np.testing.assert_allclose(episode["action"][t], [0.1 * (t - 1), -0.1 * (t - 1) - 0.05], rtol=1e-6)
        assert episode["reward"].tolist() == [0.0] + [10.0 * episode_index + t for t in range(1, L + 1)]
        # 0 only where o_t is terminal: a time limit is not a terminal state
        assert episode["not_terminal"].tolist() == [1.0] * L + [1.0 if episode_index == 1 else 0.0]


def test_evaluate_uses_the_mode_and_a_fresh_state_every_episode():
    agent, env = make_agent(), TaggedEnv(lengths=(3, 2, 3))
    created, calls = [], []
    original_initial, original_policy = agent.initial_policy_state, agent.policy

    def initial_policy_state(*args, **kwargs):
        created.append(original_initial(*args, **kwargs))
        return created[-1]

    def policy(image, state, explore):
        calls.append((int(image[0, 0, 0]), state, explore))
        action, new_state = original_policy(image, state, explore=explore)
        return action, new_state

    agent.initial_policy_state, agent.policy = initial_policy_state, policy
    returns, frames_ = evaluate(agent, env, 3)
    assert len(created) == 3
    assert all(explore is False for _, _, explore in calls)
    for episode_index in range(3):
        these = [c for c in calls if c[0] == episode_index]
        assert len(these) == env.lengths[episode_index]
        assert these[0][1] is created[episode_index]  # a fresh state, not the last episode's
        assert all(not state_equal(s[0], created[episode_index][0]) for _, s, _ in these[1:])
    want = [sum(10.0 * e + t for t in range(1, n + 1)) for e, n in enumerate(env.lengths)]
    np.testing.assert_allclose(np.asarray(returns), want)
    assert np.asarray(frames_)[:, 0, 0, 0].tolist() == [0] * 4  # the first episode's frames


# ============================================================================ world model loss
@pytest.fixture
def batch(make_square_episode):
    rng = np.random.default_rng(0)
    episodes = [make_square_episode(6, rng, action_size=ACTIONS) for _ in range(3)]
    episodes[1]["not_terminal"][-1] = 0.0  # a terminal step, for the continue target
    stack = lambda key: torch.as_tensor(np.stack([e[key] for e in episodes], 1))  # noqa: E731
    return stack("image"), stack("action"), stack("reward"), stack("not_terminal")


@pytest.mark.parametrize("predict_continue", [False, True])
def test_world_model_loss_terms_by_hand(batch, predict_continue):
    images, actions, rewards, discounts = batch
    agent = make_agent(predict_continue=predict_continue, kl_scale=0.7, free_nats=0.0, gamma=0.9)
    torch.manual_seed(21)
    loss, posterior, metrics = agent.world_model_loss(images, actions, rewards, discounts)
    torch.manual_seed(21)
    obs = preprocess_by_hand(images.numpy())
    start = agent.rssm.get_initial_state(images.shape[1])
    post, prior = agent.rssm.rollout_observation(agent.encoder(obs), actions, start)  # a_{t-1} with o_t
    assert state_equal(posterior, post)
    features = post.features
    image_loss = np.mean(np.sum(0.5 * (np64(agent.decoder(features)) - np64(obs)) ** 2, (-3, -2, -1))
                         + 0.5 * math.log(2 * math.pi) * 64 * 64 * 3)
    scaled = np64(rewards) * agent.config.reward_scale
    assert agent.config.reward_scale == 0.1 and np.abs(np64(rewards)).max() > 0.1
    reward_loss = np.mean(0.5 * (np64(agent.reward(features)) - scaled) ** 2 + 0.5 * math.log(2 * math.pi))
    kl = kl_numpy(post.mean, post.std, prior.mean, prior.std).mean()
    assert metrics["image_loss"].item() == pytest.approx(image_loss, rel=1e-5)
    assert metrics["reward_loss"].item() == pytest.approx(reward_loss, rel=1e-5)
    assert metrics["kl"].item() == pytest.approx(kl, rel=1e-5)
    want = image_loss + reward_loss + 0.7 * kl
    if predict_continue:
        logits, target = np64(agent.continue_predictor(features)), 0.9 * np64(discounts)
        bce = np.mean(softplus(logits) - target * logits)  # -[y log s(x) + (1 - y) log(1 - s(x))]
        assert metrics["continue_loss"].item() == pytest.approx(bce, rel=1e-5)
        want += agent.config.continue_scale * bce
    assert loss.item() == pytest.approx(want, rel=1e-5)


def test_world_model_loss_applies_free_nats_to_the_mean_kl(batch):
    agent = make_agent(kl_scale=2.0, free_nats=1e4)
    torch.manual_seed(22)
    loss, _, metrics = agent.world_model_loss(*batch)
    assert metrics["kl"].item() < 1e4
    want = metrics["image_loss"].item() + metrics["reward_loss"].item() + 2.0 * 1e4
    assert loss.item() == pytest.approx(want, rel=1e-6)


# ============================================================================ behaviour losses
def returns_torch(rewards, values, discounts, bootstrap, lam):
    """The hand loop of returns_by_hand, in torch so that gradients can be compared."""
    out, last = [None] * len(rewards), bootstrap
    for t in reversed(range(len(rewards))):
        next_value = values[t + 1] if t + 1 < len(rewards) else bootstrap
        last = rewards[t] + discounts[t] * ((1 - lam) * next_value + lam * last)
        out[t] = last
    return torch.stack(out)


def as_arrays(batch) -> dict:
    """The batch fixture's tensors as the numpy batch `DreamerV1.update` takes."""
    images, actions, rewards, discounts = batch
    return {"image": images.numpy(), "action": actions.numpy(), "reward": rewards.numpy(),
            "not_terminal": discounts.numpy()}


def imagined_on_twin(twin, batch, drop_last: bool) -> torch.Tensor:
    """The imagined features an update draws under torch seed 24, recomputed step by step on a
    twin agent: filter the batch, start from every posterior state (all but each window's last
    with drop_last), imagine H steps with the actor."""
    images, actions, _, _ = batch
    torch.manual_seed(24)
    embed = twin.encoder(preprocess_by_hand(images.numpy()))
    posterior, _ = twin.rssm.rollout_observation(embed, actions, twin.rssm.get_initial_state(images.shape[1]))
    if drop_last:
        posterior = RSSMState(*(x[:-1] for x in posterior))
    start = RSSMState(*(x.detach().reshape(-1, x.shape[-1]) for x in posterior))
    return twin.rssm.rollout_imagination(start, twin.actor, twin.config.horizon)[0].features


@pytest.mark.parametrize("predict_continue", [False, True])
def test_update_behaviour_losses_and_gradients_by_hand(batch, predict_continue):
    """One update: H imagined steps from every posterior state (the last of each window dropped
    with a continue head, as the official code); returns for steps 0..H-2 bootstrapped with
    v_{H-1}; losses weighted by the shifted cumulative discounts; the actor's gradient through
    the returns, the critic's with the returns as constants. Recomputed on a twin agent."""
    overrides = dict(predict_continue=predict_continue, gamma=0.8, lambda_=0.6, grad_clip=1e9)
    agent, twin = make_agent(**overrides), make_agent(**overrides)
    images, actions, rewards, discounts = batch
    arrays = as_arrays(batch)
    torch.manual_seed(24)
    metrics = agent.update(arrays)

    features = imagined_on_twin(twin, batch, drop_last=predict_continue)
    assert features.shape[:2] == (twin.config.horizon, (images.shape[0] - predict_continue) * images.shape[1])
    reward, value = twin.reward(features), twin.critic(features)
    discount = torch.sigmoid(twin.continue_predictor(features)) if predict_continue else torch.full_like(reward, 0.8)
    returns = returns_torch(reward[:-1], value[:-1], discount[:-1], value[-1], 0.6)
    np.testing.assert_allclose(np64(returns), returns_by_hand(np64(reward[:-1]), np64(value[:-1]),
                                                              np64(discount[:-1]), np64(value[-1]), 0.6), rtol=1e-5)
    w = torch.tensor(weights_by_hand(np64(discount[:-1])), dtype=torch.float32)
    actor_loss = -(w * returns).mean()
    critic_loss = (w * 0.5 * (twin.critic(features[:-1].detach()) - returns.detach()) ** 2).mean()
    assert metrics["actor_loss"].item() == pytest.approx(actor_loss.item(), rel=1e-5)
    assert metrics["critic_loss"].item() == pytest.approx(critic_loss.item(), rel=1e-5)
    assert metrics["imagined_return"].item() == pytest.approx(returns[0].mean().item(), rel=1e-5)

    for module, loss in ((twin.actor, actor_loss), (twin.critic, critic_loss)):
        params = list(module.parameters())
        want = torch.autograd.grad(loss, params, retain_graph=True)
        got = [p.grad for p in getattr(agent, "actor" if module is twin.actor else "critic").parameters()]
        for g, r in zip(got, want):
            torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("alpha", [0.8, 0.3])
def test_kl_balancing_splits_the_kls_gradient_between_prior_and_posterior(batch, alpha):
    """kl_balance (DreamerV2, off in the paper): the loss's value is the paper's, but the prior's
    layers get alpha times the KL's gradient and the posterior's (1 - alpha) times it, on top of
    the reconstruction's. Free nats 0, so that no clamp hides a gradient; one step of each
    sequence, so that no later prior reads the posterior's sample through h_{t+1}."""
    images, actions, rewards, discounts = (x[:1] for x in batch)
    plain, balanced = make_agent(free_nats=0.0), make_agent(free_nats=0.0, kl_balance=alpha)
    losses = {}
    for name, agent in (("plain", plain), ("balanced", balanced)):
        torch.manual_seed(5)
        losses[name] = agent.world_model_loss(images, actions, rewards, discounts)
    (plain_loss, _, metrics), (balanced_loss, _, _) = losses["plain"], losses["balanced"]
    assert balanced_loss.item() == pytest.approx(plain_loss.item(), rel=1e-6)

    def grads(loss, layer):
        return torch.autograd.grad(loss, list(layer.parameters()), retain_graph=True)

    kl, reconstruction = metrics["kl"], metrics["image_loss"] + metrics["reward_loss"]
    for got, kl_grad in zip(grads(balanced_loss, balanced.rssm.prior_stats), grads(kl, plain.rssm.prior_stats)):
        torch.testing.assert_close(got, alpha * kl_grad, rtol=1e-4, atol=1e-7)
    for got, kl_grad, rec_grad in zip(grads(balanced_loss, balanced.rssm.posterior_stats),
                                      grads(kl, plain.rssm.posterior_stats),
                                      grads(reconstruction, plain.rssm.posterior_stats)):
        torch.testing.assert_close(got, rec_grad + (1 - alpha) * kl_grad, rtol=1e-4, atol=1e-6)


def test_slow_critic_builds_the_returns_and_follows_the_critic_by_ema(batch):
    """slow_critic_decay (DreamerV2/V3, off in the paper): the lambda-returns bootstrap from the
    slow critic's values, the critic regresses its own values on them, and after the update each
    slow weight is decay * slow + (1 - decay) * the critic's new weight. Recomputed on a twin
    whose slow critic was moved away from the critic first, so that the two cannot be confused."""
    overrides = dict(slow_critic_decay=0.9, gamma=0.8, lambda_=0.6, grad_clip=1e9)
    agent, twin = make_agent(**overrides), make_agent(**overrides)
    for model in (agent, twin):
        with torch.no_grad():
            for param in model.slow_critic.parameters():
                param.add_(0.3 * torch.ones_like(param))
    slow_before = [p.detach().clone() for p in agent.slow_critic.parameters()]
    images, actions, rewards, discounts = batch
    arrays = as_arrays(batch)
    torch.manual_seed(24)
    metrics = agent.update(arrays)

    features = imagined_on_twin(twin, batch, drop_last=False)
    reward, value, slow = twin.reward(features), twin.critic(features), twin.slow_critic(features)
    assert (slow - value).abs().min() > 0.01  # the twin's slow critic really differs
    discount = torch.full_like(reward, 0.8)
    returns = returns_torch(reward[:-1], slow[:-1], discount[:-1], slow[-1], 0.6)
    w = torch.tensor(weights_by_hand(np64(discount[:-1])), dtype=torch.float32)
    critic_loss = (w * 0.5 * (value[:-1] - returns.detach()) ** 2).mean()
    assert metrics["actor_loss"].item() == pytest.approx(-(w * returns).mean().item(), rel=1e-5)
    assert metrics["critic_loss"].item() == pytest.approx(critic_loss.item(), rel=1e-5)
    for got, want in zip([p.grad for p in agent.critic.parameters()],
                         torch.autograd.grad(critic_loss, list(twin.critic.parameters()))):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
    for slow_param, before, critic_param in zip(agent.slow_critic.parameters(), slow_before, agent.critic.parameters()):
        torch.testing.assert_close(slow_param, 0.9 * before + 0.1 * critic_param.detach(), rtol=1e-5, atol=1e-7)
        assert not slow_param.requires_grad


def test_return_normalization_divides_the_actors_returns_by_the_ema_percentile_range(batch):
    """return_normalization (DreamerV3, off in the paper): low and high move 1% towards the 5th
    and 95th percentiles of this update's returns, and the actor maximises returns / max(1,
    high - low); the critic still regresses the unscaled returns."""
    agent, twin = make_agent(return_normalization=True, gamma=0.8), make_agent(gamma=0.8)
    agent.return_range.copy_(torch.tensor([-30.0, 5.0]))  # as if after many updates on a wide range
    images, actions, rewards, discounts = batch
    arrays = as_arrays(batch)
    seen = {}

    def recording(returns, discounts):  # the actor loss, noting the returns it is given
        seen["returns"] = returns.detach()
        return compute_actor_loss(returns, discounts)

    for model in (agent, twin):
        model.parts = type(model.parts)(actor_loss=recording)
        torch.manual_seed(24)
        metrics = model.update(arrays)
        seen[model] = (seen.pop("returns"), metrics)
    (scaled, metrics), (raw, twin_metrics) = seen[agent], seen[twin]
    low, high = 0.99 * np.array([-30.0, 5.0]) + 0.01 * np.percentile(np64(raw), [5, 95])
    np.testing.assert_allclose(np64(agent.return_range), [low, high], rtol=1e-5)
    assert high - low > 1
    np.testing.assert_allclose(np64(scaled), np64(raw) / (high - low), rtol=1e-5)
    assert metrics["return_scale"].item() == pytest.approx(high - low, rel=1e-5)
    assert metrics["critic_loss"].item() == pytest.approx(twin_metrics["critic_loss"].item(), rel=1e-6)

    small = make_agent(return_normalization=True)  # a range below 1 is not blown up
    torch.manual_seed(24)
    assert small.update(arrays)["return_scale"].item() == 1.0


# ============================================================================ replay buffer
def numbered_episode(episode_id: int, rows: int) -> dict:
    steps = np.arange(rows)
    image = np.zeros((rows, 64, 64, 3), np.uint8)
    image[:, 0, 0, 0], image[:, 0, 0, 1] = episode_id, steps
    return {"image": image, "action": np.stack([np.full(rows, episode_id), steps], 1).astype(np.float32),
            "reward": (episode_id * 100 + steps).astype(np.float32), "not_terminal": np.ones(rows, np.float32)}


def test_sampled_windows_cover_every_valid_start_uniformly():
    """Episodes of 5, 9, 12 rows (and a too-short one of 3), windows of 4: an episode uniformly
    among the long-enough ones, then a start uniformly among its rows - 4 + 1 valid ones."""
    rows, seq_len = {0: 5, 1: 3, 2: 9, 3: 12}, 4
    buffer = ReplayBuffer(capacity=10**6, seed=7)
    for episode_id, n in rows.items():
        buffer.add_episode(numbered_episode(episode_id, n), save=False)
    counts = {(e, s): 0 for e, n in rows.items() for s in range(n - seq_len + 1)}
    for _ in range(60):
        sample = buffer.sample(100, seq_len)
        reward = sample["reward"].astype(np.int64)
        for b in range(100):
            ids, steps = reward[:, b] // 100, reward[:, b] % 100
            episode_id, start = int(ids[0]), int(steps[0])
            assert np.all(ids == episode_id) and steps.tolist() == list(range(start, start + seq_len))
            assert sample["image"][:, b, 0, 0, 1].tolist() == steps.tolist()  # rows of one step together
            assert sample["action"][:, b, 1].tolist() == steps.tolist()
            counts[(episode_id, start)] += 1  # KeyError: a start no episode allows
    total = sum(counts.values())
    per_episode = {e: sum(c for (i, _), c in counts.items() if i == e) for e in rows}
    assert per_episode[1] == 0
    for e in (0, 2, 3):
        assert abs(per_episode[e] / total - 1 / 3) < 0.03, per_episode
        starts = [counts[(e, s)] for s in range(rows[e] - seq_len + 1)]
        assert min(starts) > 0, (e, starts)  # every valid start, the last one included
        expected = per_episode[e] / len(starts)
        chi2 = sum((c - expected) ** 2 / expected for c in starts)
        assert chi2 < 30, (e, starts)  # df <= 8: p < 0.001 at 26
