"""DreamerV2's discrete latent (discrete.py) against references written here: the 1% uniform
mix, one-hot samples drawn with the mixed probabilities, the straight-through gradient, the
categorical KL; and the agent, the debugger and the dream running with it."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dreamer_lib.agent import DreamerV1, Parts
from dreamer_lib.buffer import random_batch
from dreamer_lib.config import make_config
from dreamer_lib.discrete import DiscreteRSSM, DiscreteState, categorical_kl
from dreamer_lib.rssm import RSSM, kl_loss

VARIABLES, CLASSES = 3, 4


def mixed_probs(logits: torch.Tensor) -> torch.Tensor:
    """0.99 softmax + 0.01 uniform, per variable, written out."""
    e = torch.exp(logits - logits.max(-1, keepdim=True).values)
    return 0.99 * e / e.sum(-1, keepdim=True) + 0.01 / logits.shape[-1]


@pytest.fixture
def rssm() -> DiscreteRSSM:
    torch.manual_seed(0)
    return DiscreteRSSM(action_size=2, embed_size=5, stoch_size=VARIABLES, deter_size=6, hidden_size=7, classes=CLASSES)


def test_sizes_follow_variables_times_classes(rssm):
    assert rssm.stoch_size == VARIABLES * CLASSES and rssm.feature_size == VARIABLES * CLASSES + 6
    assert rssm.prior_stats.out_features == rssm.posterior_stats.out_features == VARIABLES * CLASSES
    start = rssm.get_initial_state(2)
    assert isinstance(start, DiscreteState) and start.stoch.shape == (2, VARIABLES * CLASSES)
    np.testing.assert_allclose(start.logits.exp().numpy(), 1 / CLASSES)


def test_distribution_mixes_one_percent_uniform_and_samples_one_hot(rssm):
    logits = torch.tensor([[[8.0, 0.0, -8.0, 0.0], [0.0, 0.0, 0.0, 0.0], [-30.0, 30.0, 0.0, 0.0]]]).flatten(-2)
    state = rssm._distribution(logits, torch.zeros(1, 6))
    probs = mixed_probs(logits.unflatten(-1, (VARIABLES, CLASSES)))
    np.testing.assert_allclose(state.logits.exp().unflatten(-1, (VARIABLES, CLASSES)).numpy(), probs.numpy(),
                               rtol=1e-5)
    assert probs.min() >= 0.01 / CLASSES  # no class is impossible: the KL stays finite
    sample = state.stoch.detach().unflatten(-1, (VARIABLES, CLASSES))
    torch.testing.assert_close(sample, sample.round(), rtol=0, atol=1e-6)  # + probs - probs: float rounding
    torch.testing.assert_close(sample.round().sum(-1), torch.ones(1, VARIABLES))


def test_samples_follow_the_mixed_probabilities(rssm):
    torch.manual_seed(1)
    logits = torch.tensor([2.0, 0.0, -1.0, 1.0]).repeat(VARIABLES)
    state = rssm._distribution(logits.expand(20000, -1), torch.zeros(20000, 6))
    frequencies = state.stoch.detach().unflatten(-1, (VARIABLES, CLASSES)).mean(0)  # (variables, classes)
    expected = mixed_probs(torch.tensor([2.0, 0.0, -1.0, 1.0]))
    np.testing.assert_allclose(frequencies.numpy(), expected.expand(VARIABLES, -1).numpy(), atol=0.015)


def test_gradient_is_straight_through_the_probabilities(rssm):
    """d stoch / d logits is d probs / d logits: the sample's value, the probabilities' gradient."""
    logits = torch.randn(5, VARIABLES * CLASSES, generator=torch.Generator().manual_seed(2), requires_grad=True)
    weights = torch.randn(5, VARIABLES * CLASSES, generator=torch.Generator().manual_seed(3))
    state = rssm._distribution(logits, torch.zeros(5, 6))
    (got,) = torch.autograd.grad((state.stoch * weights).sum(), logits)
    (want,) = torch.autograd.grad((mixed_probs(logits.unflatten(-1, (VARIABLES, CLASSES))).flatten(-2) * weights).sum(),
                                  logits)
    torch.testing.assert_close(got, want)
    assert got.abs().max() > 0


def test_categorical_kl_sums_q_log_q_over_p_over_variables_and_classes():
    g = torch.Generator().manual_seed(4)
    q_probs = mixed_probs(torch.randn(2, VARIABLES, CLASSES, generator=g))
    p_probs = mixed_probs(torch.randn(2, VARIABLES, CLASSES, generator=g))
    q, p = (DiscreteState(x.log().flatten(-2), x.flatten(-2), torch.zeros(2, 1)) for x in (q_probs, p_probs))
    q64, p64 = q_probs.double().numpy(), p_probs.double().numpy()
    want = (q64 * np.log(q64 / p64)).sum((-1, -2))
    np.testing.assert_allclose(categorical_kl(q, p).numpy(), want, rtol=1e-5)
    np.testing.assert_allclose(categorical_kl(q, q).numpy(), 0, atol=1e-6)


def test_free_nats_per_state_clamp_each_states_categorical_kl():
    """DreamerV3's free bits on the discrete latent: each state's KL summed over its variables,
    clamped at free_nats, then the mean; the agent builds that from the categorical KL."""
    g = torch.Generator().manual_seed(6)
    q_probs = mixed_probs(3 * torch.randn(4, VARIABLES, CLASSES, generator=g))
    p_probs = mixed_probs(3 * torch.randn(4, VARIABLES, CLASSES, generator=g))
    q, p = (DiscreteState(x.log().flatten(-2), x.flatten(-2), torch.zeros(4, 1)) for x in (q_probs, p_probs))
    q64, p64 = q_probs.double().numpy(), p_probs.double().numpy()
    per_state = (q64 * np.log(q64 / p64)).sum((-1, -2))
    free_nats = float(np.median(per_state))
    torch.manual_seed(0)
    agent = DreamerV1(make_config("ci", latent_classes=CLASSES, stoch_size=VARIABLES, free_nats_per_state=True),
                      action_size=1, device="cpu")
    clamped, kl = agent.parts.kl_loss(q, p, free_nats)
    assert clamped.item() == pytest.approx(np.maximum(per_state, free_nats).mean(), rel=1e-5)
    assert kl.item() == pytest.approx(per_state.mean(), rel=1e-5)


def test_a_learners_kl_loss_is_not_silently_replaced_by_free_nats_per_state():
    def my_kl_loss(posterior, prior, free_nats):
        return kl_loss(posterior, prior, free_nats)

    with pytest.raises(ValueError, match="free_nats_per_state .* replace your own kl_loss"):
        DreamerV1(make_config("ci", free_nats_per_state=True), action_size=1, device="cpu",
                  parts=Parts(kl_loss=my_kl_loss))


def test_the_agent_trains_with_the_discrete_latent_and_its_kl():
    torch.manual_seed(0)
    config = make_config("ci", latent_classes=CLASSES, stoch_size=VARIABLES, fast=False, free_nats=0.0)
    agent = DreamerV1(config, action_size=1, device="cpu")
    assert isinstance(agent.rssm, DiscreteRSSM) and agent.rssm.classes == CLASSES
    batch = random_batch(config.batch_size, config.seq_len, 1, seed=0)
    before = [p.detach().clone() for p in agent.rssm.prior_stats.parameters()]
    metrics = agent.update(batch)
    assert all(torch.isfinite(v).all() for v in metrics.values()) and "prior_std" not in metrics
    assert any((p - b).abs().max() > 0 for p, b in zip(agent.rssm.prior_stats.parameters(), before))
    assert agent.rssm.posterior_stats.weight.grad.abs().max() > 0  # straight through, from the image loss too


def test_a_learners_rssm_is_not_silently_replaced_by_the_discrete_one():
    class MyRSSM(RSSM):
        pass

    with pytest.raises(ValueError, match="latent_classes > 0 .* replace your own rssm or kl_loss"):
        DreamerV1(make_config("ci", latent_classes=CLASSES), action_size=1, device="cpu", parts=Parts(rssm=MyRSSM))


def test_the_debugger_and_the_dream_work_with_a_discrete_model():
    from dreamer_lib.course.dream import Dream
    from dreamer_lib.course.pictures import debug_episode
    from dreamer_lib.envs import make_env, run_episode

    torch.manual_seed(0)
    agent = DreamerV1(make_config("ci", latent_classes=CLASSES, stoch_size=VARIABLES), action_size=1, device="cpu")
    env = make_env("pendulum", 2, 40, seed=0)
    traces = debug_episode(agent, run_episode(env), start=5)
    assert np.isfinite(traces["kl"]).all() and (traces["kl"] >= -1e-6).all()
    dream = Dream(agent, env, seed=0, context=2)
    for _ in range(3):
        dream.step([0.3])
    assert np.isfinite(dream.history()["predicted_reward"]).all()
