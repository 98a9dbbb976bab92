"""DreamerV1 on the ci preset: the update, where its gradients go, that it learns, acting,
open-loop prediction and checkpoints."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from dreamer_lib.agent import DreamerV1
from dreamer_lib.buffer import ReplayBuffer
from dreamer_lib.config import make_config
from dreamer_lib.rssm import RSSMState

ACTIONS = 2
IMAGE_CONSTANT = 0.5 * math.log(2 * math.pi) * 64 * 64 * 3  # the image loss of a perfect reconstruction
METRICS = {"image_loss", "reward_loss", "kl", "prior_std", "posterior_std", "model_loss", "model_grad_norm",
           "actor_loss", "critic_loss", "imagined_return", "value", "actor_grad_norm", "critic_grad_norm", "actor_entropy"}


def make_agent(seed: int = 0, **overrides) -> DreamerV1:
    torch.manual_seed(seed)
    return DreamerV1(make_config("ci", fast=False, **overrides), action_size=ACTIONS, device="cpu")


@pytest.fixture
def buffer(make_square_episode) -> ReplayBuffer:
    """A fixed dataset: four episodes of a moving square."""
    rng = np.random.default_rng(0)
    buffer = ReplayBuffer(capacity=10**6, seed=0)
    for _ in range(4):
        buffer.add_episode(make_square_episode(30, rng, action_size=ACTIONS))
    return buffer


def clipped(grads, max_norm):
    """What clip_grad_norm_ leaves: the gradients scaled to a global norm of at most max_norm."""
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    scale = torch.clamp(max_norm / (norm + 1e-6), max=1.0)
    return [g * scale for g in grads]


def test_update_returns_finite_metrics_and_moves_every_group(buffer):
    agent = make_agent()
    before = {group: [p.detach().clone() for p in params] for group, params in agent.params.items()}
    metrics = agent.update(buffer.sample(3, 8))
    assert set(metrics) == METRICS
    for key, value in metrics.items():
        assert isinstance(value, torch.Tensor) and value.dim() == 0 and not value.requires_grad, key
        assert math.isfinite(value.item()), key
    assert metrics["image_loss"].item() > IMAGE_CONSTANT  # includes the Gaussian's constant
    assert metrics["kl"].item() >= 0
    for group, params in agent.params.items():
        assert any(not torch.equal(p, b) for p, b in zip(params, before[group])), f"{group} did not move"
    # the groups partition the agent's parameters
    ids = [id(p) for params in agent.params.values() for p in params]
    assert len(ids) == len(set(ids)) == len(list(agent.parameters()))


def test_update_with_continue_head_reports_its_loss(buffer):
    metrics = make_agent(predict_continue=True).update(buffer.sample(3, 8))
    assert set(metrics) == METRICS | {"continue_loss"}
    assert all(math.isfinite(v.item()) for v in metrics.values())


def frozen(agent: DreamerV1) -> DreamerV1:
    """Learning rates 0: update() computes and leaves its gradients in .grad but moves nothing."""
    for optimizer in agent.optimizers.values():
        for group in optimizer.param_groups:
            group["lr"] = 0.0
    return agent


def reference_behaviour_losses(agent, posterior):
    """The actor and critic losses of section 3, written out here with plain loops (not with the
    library's rollout_imagination, compute_lambda_returns or loss functions): H prior steps from
    every posterior state, actions from the actor on detached states, V_lambda (eq. 6) for steps
    0..H-2 bootstrapped with v_{H-1}, losses weighted by gamma^t (no continue head). With
    actor_entropy = eta, the actor loss also subtracts eta times a one-draw estimate of the policy's
    entropy at imagined states 0..H-2, -log pi(a|s) for a = tanh(x), x ~ N(mean, std)."""
    c = agent.config
    state = RSSMState(*(x.detach().reshape(-1, x.shape[-1]) for x in posterior))
    features = []
    for _ in range(c.horizon):
        action = agent.actor(torch.cat([state.stoch, state.deter], -1).detach()).rsample()
        state = agent.rssm.prior(state, action)
        features.append(torch.cat([state.stoch, state.deter], -1))
    features = torch.stack(features)  # (H, N, F)
    policy = agent.actor(features[:-1].detach()).normal
    x = policy.loc + policy.scale * torch.empty_like(policy.loc).normal_()  # the library's draw order
    log_normal = -0.5 * ((x - policy.loc) / policy.scale) ** 2 - policy.scale.log() - 0.5 * math.log(2 * math.pi)
    log_det = 2 * math.log(2) - 2 * torch.logaddexp(x, -x)  # log(1 - tanh(x)^2) = log(4 / (e^x + e^-x)^2)
    entropy = -(log_normal - log_det).sum(-1)  # (H-1, N)
    reward, value = agent.reward(features), agent.critic(features)
    returns, last = [None] * (c.horizon - 1), value[-1]
    for t in reversed(range(c.horizon - 1)):
        last = reward[t] + c.gamma * ((1 - c.lambda_) * value[t + 1] + c.lambda_ * last)
        returns[t] = last
    returns = torch.stack(returns)  # (H-1, N)
    weights = torch.tensor([c.gamma ** t for t in range(c.horizon - 1)])[:, None]
    actor_loss = -(weights * returns).mean() - c.actor_entropy * (weights * entropy).mean()
    critic_loss = (weights * 0.5 * (agent.critic(features[:-1].detach()) - returns.detach()) ** 2).mean()
    return actor_loss, critic_loss


@pytest.mark.parametrize("actor_entropy", [0.0, 0.5])
def test_update_gives_each_group_the_clipped_gradient_of_its_own_loss(buffer, actor_entropy):
    # gamma, lambda away from 1: misweighted terms show
    agent = frozen(make_agent(gamma=0.9, lambda_=0.7, actor_entropy=actor_entropy))
    batch = buffer.sample(3, 8)
    torch.manual_seed(5)
    metrics = agent.update(batch)
    got = {group: [p.grad.clone() for p in params] for group, params in agent.params.items()}

    # The same losses by hand, with the same random draws, each differentiated w.r.t. its group only.
    torch.manual_seed(5)
    model_loss, posterior, _ = agent.world_model_loss(*agent.to_batch(batch))
    model_grads = torch.autograd.grad(model_loss, agent.params["model"])
    actor_loss, critic_loss = reference_behaviour_losses(agent, posterior)
    assert metrics["actor_loss"].item() == pytest.approx(actor_loss.item(), rel=1e-5)
    assert metrics["critic_loss"].item() == pytest.approx(critic_loss.item(), rel=1e-5)
    actor_grads = torch.autograd.grad(actor_loss, agent.params["actor"], retain_graph=True)
    critic_grads = torch.autograd.grad(critic_loss, agent.params["critic"], retain_graph=True)
    clip = agent.config.grad_clip
    for group, want in (("model", model_grads), ("actor", actor_grads), ("critic", critic_grads)):
        for g, w in zip(got[group], clipped(want, clip)):
            torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-6)

    # The check above means something: the actor loss does depend on world-model parameters
    # (it backpropagates through the dynamics and reward head), yet none of that reached them.
    through_model = torch.autograd.grad(actor_loss, agent.params["model"], allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in through_model)
    # and the actor receives a real gradient
    assert all(torch.isfinite(g).all() for g in got["actor"])
    assert sum(g.abs().sum() for g in got["actor"]) > 0


def test_update_clips_each_group_to_grad_clip(buffer):
    agent = frozen(make_agent(grad_clip=1e-3))
    metrics = agent.update(buffer.sample(3, 8))
    for group, params in agent.params.items():
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in params]))
        assert metrics[f"{group}_grad_norm"].item() > 1e-3, "the test needs gradients above the clip"
        assert norm.item() == pytest.approx(1e-3, rel=1e-3), group


def test_update_with_continue_head_imagines_from_all_but_the_last_step(buffer):
    """With a continue head the official code drops each window's last state as a start (it may
    be terminal): T - 1 starts per sequence."""
    agent = frozen(make_agent(predict_continue=True))
    starts = []
    imagine = agent.rssm.rollout_imagination

    def recording(start, actor, horizon):
        starts.append(start.deter.shape[0])
        return imagine(start, actor, horizon)

    agent.rssm.rollout_imagination = recording
    agent.update(buffer.sample(3, 8))
    assert starts == [(8 - 1) * 3]


@pytest.mark.parametrize("every, predict_continue, steps", [(1, False, range(8)), (3, False, [0, 3, 6]),
                                                             (3, True, [0, 3, 6]), (2, True, [0, 2, 4, 6])])
def test_imagination_starts_from_every_kth_posterior_step(buffer, every, predict_continue, steps):
    """imagine_every k (1 = the paper) keeps the posterior states at steps 0, k, 2k... of every
    window (before the last with a continue head), each batch row's, in time-major order."""
    agent = frozen(make_agent(imagine_every=every, predict_continue=predict_continue))
    batch = buffer.sample(3, 8)
    starts, observed = [], []
    imagine, world_model_loss = agent.rssm.rollout_imagination, agent.world_model_loss

    def recording(start, actor, horizon):
        starts.append(start.deter.detach())
        return imagine(start, actor, horizon)

    def keeping(*args):
        loss, posterior, metrics = world_model_loss(*args)
        observed.append(posterior.deter.detach())
        return loss, posterior, metrics

    agent.rssm.rollout_imagination, agent.world_model_loss = recording, keeping
    agent.update(batch)
    expected = torch.cat([observed[0][t] for t in steps])  # (len(steps) * B, deter)
    torch.testing.assert_close(starts[0], expected)


def test_entropy_bonus_subtracts_eta_times_the_policy_entropy(buffer):
    """actor_entropy = 0 is the paper's loss; eta > 0 adds -eta * H(pi) at the imagined states
    (gamma = 1 makes every discount weight 1, so the logged mean entropy is the weighted one)."""
    batch = buffer.sample(3, 8)
    losses = {}
    for eta in (0.0, 0.5):
        agent = frozen(make_agent(gamma=1.0, actor_entropy=eta))
        torch.manual_seed(7)
        metrics = agent.update(batch)
        losses[eta] = (metrics["actor_loss"].item(), metrics["actor_entropy"].item())
    (paper, entropy), (bonus, same_entropy) = losses[0.0], losses[0.5]
    assert entropy == same_entropy
    assert bonus == pytest.approx(paper - 0.5 * entropy, rel=1e-5)


def test_update_world_model_steps_only_the_world_model(buffer):
    agent = make_agent()
    before = {group: [p.detach().clone() for p in params] for group, params in agent.params.items()}
    metrics = agent.update_world_model(buffer.sample(3, 8))
    assert {"model_loss", "model_grad_norm", "kl"} <= set(metrics)
    assert any(not torch.equal(p, b) for p, b in zip(agent.params["model"], before["model"]))
    for group in ("actor", "critic"):
        assert all(torch.equal(p, b) for p, b in zip(agent.params[group], before[group])), group


def test_world_model_learns_a_fixed_dataset(buffer):
    agent = make_agent()
    losses = [agent.update(buffer.sample(3, 8))["model_loss"].item() for _ in range(150)]
    first, last = np.mean(losses[:10]), np.mean(losses[-10:])
    assert all(math.isfinite(x) for x in losses)
    # Beyond the constant of a perfect reconstruction, the loss is mostly 0.5 x the squared pixel
    # error; on a black frame with one square, learning the background alone removes most of it.
    assert last - IMAGE_CONSTANT < 0.5 * (first - IMAGE_CONSTANT), (first, last)


def test_policy_actions_lie_in_the_action_box(buffer):
    agent = make_agent()
    frames = buffer.episodes[0]["image"]
    for explore in (True, False):
        state = agent.initial_policy_state()
        for t in range(10):
            action, state = agent.policy(frames[t], state, explore=explore)
            assert isinstance(action, np.ndarray) and action.shape == (ACTIONS,)
            assert np.all(np.abs(action) <= 1) and np.all(np.isfinite(action))
            latent, previous = state
            np.testing.assert_array_equal(previous.cpu().numpy()[0], action)  # fed back as a_{t-1}
            assert latent.deter.shape == (1, agent.config.deter_size)
    batch_actions, _ = agent.policy(frames[:3], agent.initial_policy_state(3), explore=True)
    assert batch_actions.shape == (3, ACTIONS) and np.all(np.abs(batch_actions) <= 1)


def test_open_loop_prediction_ignores_frames_after_the_context(buffer):
    agent = make_agent()
    batch = buffer.sample(2, 10)
    images, actions = torch.as_tensor(batch["image"]), torch.as_tensor(batch["action"])
    torch.manual_seed(1)
    frames = agent.open_loop(images, actions, context=5)
    assert frames.dtype == torch.uint8 and frames.shape == (10, 2, 64, 64, 3)

    later_changed = images.clone()
    later_changed[5:] = 255 - later_changed[5:]
    torch.manual_seed(1)
    assert torch.equal(agent.open_loop(later_changed, actions, context=5), frames)

    context_changed = images.clone()
    context_changed[:5] = 255 - context_changed[:5]
    torch.manual_seed(1)
    assert not torch.equal(agent.open_loop(context_changed, actions, context=5), frames)


def test_checkpoint_round_trip_restores_weights_and_optimizers(buffer, tmp_path):
    agent = make_agent(seed=0)
    for _ in range(2):
        agent.update(buffer.sample(3, 8))
    torch.save(agent.checkpoint(), tmp_path / "agent.pt")

    restored = make_agent(seed=1)
    assert not torch.equal(restored.encoder.convs[0].weight, agent.encoder.convs[0].weight)
    restored.load_checkpoint(torch.load(tmp_path / "agent.pt", weights_only=False))
    for (name, a), (_, b) in zip(agent.state_dict().items(), restored.state_dict().items()):
        assert torch.equal(a, b), name

    frame = buffer.episodes[1]["image"][3]
    outputs = []
    for model in (agent, restored):
        torch.manual_seed(7)
        action, _ = model.policy(frame, model.initial_policy_state(), explore=True)
        outputs.append(action)
    np.testing.assert_array_equal(*outputs)

    # The optimiser state came back too: one more identical update leaves identical weights
    # (Adam's moments and step count decide the step; fresh moments would give another one).
    batch = buffer.sample(3, 8)
    for model in (agent, restored):
        torch.manual_seed(8)
        model.update(batch)
    for (name, a), (_, b) in zip(agent.state_dict().items(), restored.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    fresh = make_agent(seed=1)
    fresh.load_state_dict(torch.load(tmp_path / "agent.pt", weights_only=False)["model"])
    torch.manual_seed(8)
    fresh.update(batch)
    assert not torch.equal(fresh.actor.net[0].weight, agent.actor.net[0].weight)


def test_agents_loaded_from_one_checkpoint_dict_do_not_share_optimizer_state(buffer):
    """Lesson 7 continues one checkpoint several times: each must start from the saved Adam state,
    whatever the ones before did (load_state_dict alone keeps the dict's tensors, stepped in place)."""
    agent = make_agent(seed=0)
    agent.update(buffer.sample(3, 8))
    checkpoint = agent.checkpoint()
    saved = {k: v.clone() for k, v in checkpoint["optimizers"]["model"]["state"][0].items()}
    batch = buffer.sample(3, 8)
    finals = []
    for _ in range(2):
        model = make_agent(seed=1)
        model.load_checkpoint(checkpoint)
        torch.manual_seed(3)
        model.update(batch)
        finals.append(model.encoder.convs[0].weight.detach().clone())
    for key, value in saved.items():
        assert torch.equal(checkpoint["optimizers"]["model"]["state"][0][key], value), key
    assert torch.equal(*finals)


def test_checkpoint_from_another_architecture_is_refused_with_advice(buffer, tmp_path):
    checkpoint = make_agent().checkpoint()
    other = make_agent(deter_size=32)
    with pytest.raises(ValueError, match=r"(?s)another size.*config\.json of its own run folder"):
        other.load_checkpoint(checkpoint)


def test_agent_has_the_configured_sizes():
    agent = make_agent()
    c = agent.config
    assert agent.rssm.feature_size == c.stoch_size + c.deter_size
    assert agent.encoder.embed_size == 8 * c.cnn_depth * 4
    linears = [m for m in agent.actor.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 5 and linears[-1].out_features == 2 * ACTIONS
    assert all(o.defaults["eps"] == c.adam_eps for o in agent.optimizers.values())
    assert agent.optimizers["model"].defaults["lr"] == c.model_lr
