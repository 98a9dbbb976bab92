"""Checks for lesson 4 (training the world model): one world-model update, the open-loop rollout.
The references are the library's: DreamerV1.update_world_model and DreamerV1.open_loop."""
from __future__ import annotations

import numpy as np
import torch

from dreamer_lib.course.checks import expect_shape, fail, passed
from dreamer_lib.config import make_config


def _tiny_agent(seed: int = 0, **changes):
    """A ci-sized agent in plain fp32 on the CPU, so that two copies compute the same numbers."""
    from dreamer_lib.agent import DreamerV1

    torch.manual_seed(seed)
    config = make_config("ci", device="cpu", fast=False, compile="off", **changes)
    return DreamerV1(config, action_size=2, device="cpu")


def _fake_batch(seed: int, steps: int = 4, batch: int = 2) -> dict:
    rng = np.random.default_rng(seed)
    return {"image": rng.integers(0, 256, (steps, batch, 64, 64, 3), dtype=np.uint8),
            "action": rng.uniform(-1, 1, (steps, batch, 2)).astype(np.float32),
            "reward": rng.normal(size=(steps, batch)).astype(np.float32),
            "discount": np.ones((steps, batch), np.float32)}


def _sgd(agent, lr: float):
    # Plain SGD makes a parameter's change exactly -lr * (the gradient the step used), so the check
    # can tell which gradient that was (Adam's first step hides the gradient's scale).
    agent.optimizers = {group: torch.optim.SGD(params, lr=lr) for group, params in agent.params.items()}


def _flat(params) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in params])


def _grads(agent, batch) -> torch.Tensor:
    images, actions, rewards, discounts = agent.to_batch(batch)
    loss = agent.world_model_loss(images, actions, rewards, discounts)[0]
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, agent.params["model"])])


def check_world_model_step(world_model_step) -> None:
    """world_model_step(agent, batch) -> metrics: loss, zero_grad, backward, clip, step of the model
    optimiser; compared with the library's step, DreamerV1.update_world_model, on a twin agent."""
    with torch.random.fork_rng(devices=[]):  # leave the notebook's random numbers as they were
        _check_world_model_step(world_model_step)


def _check_world_model_step(world_model_step) -> None:
    ex = "4.1"
    lr, clip = 0.1, 1.0
    agent, library, twin = (_tiny_agent(grad_clip=clip) for _ in range(3))
    _sgd(agent, lr)
    _sgd(library, lr)
    batch, earlier = _fake_batch(0), _fake_batch(1)
    model = agent.params["model"]
    before = _flat(model)
    others = {group: _flat(agent.params[group]) for group in ("actor", "critic")}

    # The reference: the library's world-model step on an identical agent, same batch, same samples.
    torch.manual_seed(1)
    library.update_world_model(batch)
    expected = before - _flat(library.params["model"])
    # For naming mistakes: this batch's gradient, unclipped, and left-over gradients from an
    # earlier batch, as a previous update leaves them in .grad.
    torch.manual_seed(1)
    grad = _grads(twin, batch)
    stale = _grads(twin, earlier)
    offset = 0
    for p in model:
        p.grad = stale[offset:offset + p.numel()].view_as(p).clone()
        offset += p.numel()

    torch.manual_seed(1)  # the same posterior samples as the gradient above
    metrics = world_model_step(agent, batch)
    step = before - _flat(model)
    for group, values in others.items():
        if not torch.equal(values, _flat(agent.params[group])):
            fail(ex, f"the {group}'s parameters changed. Step only agent.optimizers['model']: the world model "
                     "trains here, the actor and critic have their own losses (lesson 5).")
    if step.abs().max() == 0:
        fail(ex, "the world model's parameters did not change. After loss.backward() and clipping, call "
                 "agent.optimizers['model'].step() (not the actor's or critic's optimiser).")
    accumulated = grad + stale
    accumulated = accumulated * min(1.0, clip / (float(accumulated.norm()) + 1e-6))
    candidates = {
        "the parameters moved by this batch's gradient PLUS the gradient left in .grad by an earlier step: "
        "PyTorch accumulates gradients, so call agent.optimizers['model'].zero_grad() before loss.backward()":
            accumulated,
        "the step used the UNCLIPPED gradient: clip with nn.utils.clip_grad_norm_(agent.params['model'], "
        "agent.config.grad_clip) after backward() and BEFORE optimizer.step() (clipping after the step changes "
        "nothing that was used)": grad,
        "the step used the unclipped sum of this batch's gradient and an earlier one: zero_grad() is missing, "
        "and the clip comes too late (after step) or not at all": grad + stale,
    }
    if not torch.allclose(step, expected, atol=1e-6, rtol=1e-3):
        for mistake, used in candidates.items():
            if torch.allclose(step, lr * used, atol=1e-6, rtol=1e-3):
                fail(ex, mistake + ".")
        error = (step - expected).abs().max()
        fail(ex, f"the parameter update differs from the library's DreamerV1.update_world_model on the same batch "
                 f"(max error {error:.3g}). Use agent.world_model_loss(...), zero_grad, backward, clip_grad_norm_ "
                 "with agent.config.grad_clip, then agent.optimizers['model'].step().")
    if not isinstance(metrics, dict) or "image_loss" not in metrics:
        fail(ex, "return the metrics dict of world_model_loss (with image_loss, reward_loss, kl, ...).")
    if any(isinstance(v, torch.Tensor) and v.requires_grad for v in metrics.values()):
        fail(ex, "detach the returned metrics (v.detach()): kept graphs hold on to memory across updates.")
    passed(ex, "loss -> zero_grad -> backward -> clip -> step of the model optimiser, and nothing else.")


def _reference_variants(agent, images, actions, context):
    """The usual wrong open-loop rollouts, for naming a learner's mistake."""
    encoder, rssm, decoder = agent.encoder, agent.rssm, agent.decoder
    from dreamer_lib.networks import preprocess, to_uint8

    def observe(frames, acts):
        start = rssm.get_initial_state(images.shape[1], images.device)
        return rssm.rollout_observation(encoder(preprocess(frames)), acts, start)[0]

    def decode(*states):
        return to_uint8(torch.cat([decoder(s.features) for s in states]))

    variants = {}
    with torch.no_grad():
        torch.manual_seed(0)
        post = observe(images[:context], actions[:context])
        variants["the prior is fed actions[context - 1:-1], one step late: the step into o_t takes actions[t] "
                 "(= a_(t-1)), so the prior's actions are actions[context:]"] = decode(
            post, rssm.rollout_prior(actions[context - 1:-1], post.at(-1)))
        torch.manual_seed(0)
        post = observe(images[:context], actions[:context])
        variants["the prior starts from a fresh initial state: it must continue from the LAST posterior state "
                 "of the context"] = decode(post, rssm.rollout_prior(actions[context:],
                                                                     rssm.get_initial_state(images.shape[1],
                                                                                            images.device)))
        torch.manual_seed(0)
        variants["the frames after the context are filtered with the posterior (the model keeps seeing the real "
                 "frames): after the context only the prior may run, with rollout_prior"] = decode(
            observe(images, actions))
    return variants


def check_open_loop(open_loop, agent=None) -> None:
    """open_loop(agent, images, actions, context) against agent.open_loop under the same torch seed,
    on a tiny random agent (or the given one) and random frames."""
    ex = "4.2"
    if agent is None:
        agent = _tiny_agent()
        with torch.no_grad():  # an untrained decoder paints grey whatever it is given; make it sensitive
            for param in agent.decoder.parameters():
                param.mul_(3.0)
    steps, batch, context = 12, 3, 5
    rng = np.random.default_rng(0)
    images = torch.as_tensor(rng.integers(0, 256, (steps, batch, 64, 64, 3), dtype=np.uint8), device=agent.device)
    actions = torch.as_tensor(rng.uniform(-1, 1, (steps, batch, agent.action_size)).astype(np.float32),
                              device=agent.device)
    devices = [agent.device.index or 0] if agent.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):  # leave the notebook's random numbers as they were
        torch.manual_seed(0)
        expected = agent.open_loop(images, actions, context)
        torch.manual_seed(0)
        out = open_loop(agent, images, actions, context)
        if not isinstance(out, torch.Tensor):
            fail(ex, f"open_loop should return a uint8 tensor of frames; got {type(out).__name__}.")
        variants = _reference_variants(agent, images, actions, context) if out.shape == expected.shape else {}
    expect_shape(ex, f"open_loop(agent, images (T={steps}, B={batch}, 64, 64, 3), actions, context={context})",
                 out, expected.shape)
    if out.dtype != torch.uint8:
        fail(ex, f"the frames should be uint8 (..., 64, 64, 3) for display; got {out.dtype}. "
                 "Use dreamer_lib.networks.to_uint8 on the decoder's output.")
    if out.requires_grad:
        fail(ex, "the frames carry a gradient: run the rollout under torch.no_grad() (it is only for looking).")

    def close(a, b):
        return (a.int() - b.int()).abs().max() <= 1

    if close(out, expected):
        passed(ex, f"{context} frames filtered by the posterior, then the prior predicts the rest with the real "
                   "actions; same frames as agent.open_loop.")
        return
    if not close(out[:context], expected[:context]):
        fail(ex, f"the first {context} frames (the context) differ from the reference: they are the posterior's "
                 "reconstructions, decoder(posterior.features) after rollout_observation of the context frames "
                 "with actions[:context], starting from rssm.get_initial_state(B). Sample in the same order as "
                 "the reference: observe first, then imagine.")
    for mistake, frames in variants.items():
        if close(out, frames):
            fail(ex, f"the context is right, but {mistake}.")
    error = (out.int() - expected.int()).abs()
    fail(ex, f"the predicted frames after the context differ from the reference (max pixel error "
             f"{int(error.max())}, mean {float(error.float().mean()):.3g}): continue from the last posterior state "
             "with rssm.rollout_prior(actions[context:], last_state) and decode the prior states' features.")
