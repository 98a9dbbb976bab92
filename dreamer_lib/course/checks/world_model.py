"""Checks for lesson 4 (training the world model): one world-model update, the open-loop rollout.
The references are the library's: DreamerV1.update_world_model and DreamerV1.open_loop."""
from __future__ import annotations

import torch

from dreamer_lib import evaluate
from dreamer_lib.buffer import random_batch
from dreamer_lib.course.checks import call, expect_shape, fail, passed
from dreamer_lib.config import make_config


def _tiny_agent(seed: int = 0, **changes):
    """A ci-sized agent in plain fp32 on the CPU, so that two copies compute the same numbers."""
    from dreamer_lib.agent import DreamerV1

    torch.manual_seed(seed)
    config = make_config("ci", device="cpu", fast=False, compile="off", **changes)
    return DreamerV1(config, action_size=2, device="cpu")


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
    optimiser; compared with the library's step, DreamerV1.update_world_model, on a twin agent.

    It runs twice, with grad_clip values a learner cannot guess: one below this batch's gradient
    norm (about 14), where the clip rescales the step, and one far above it, where it does
    nothing. A step that clips to any other value (a hard-coded 1.0, or the paper's 100) fails in
    one of the two and is told the value it clipped to; a correct step passes both."""
    with torch.random.fork_rng(devices=[]):  # leave the notebook's random numbers as they were
        for clip in ACTIVE_CLIP, IDLE_CLIP:
            _check_world_model_step(world_model_step, clip)
    # (the words the lessons' stored outputs show)
    passed("4.1", "loss -> zero_grad -> backward -> clip -> step of the model optimiser, and nothing else.")


ACTIVE_CLIP, IDLE_CLIP = 0.37, 4321.0
STEP_HINTS = (
    (r"has no attribute 'optimizer'|'optimizers'|KeyError", "The agent's optimisers are a dict: "
     "agent.optimizers['model'] (also 'actor' and 'critic'); the world model's parameters are agent.params['model']."),
    (r"has no attribute 'grad_clip'|has no attribute 'config'", "The clip value is agent.config.grad_clip."),
    (r"world_model_loss", "agent.world_model_loss(images, actions, rewards, discounts) returns (loss, posterior, "
     "metrics); the four tensors come from agent.to_batch(batch)."),
)


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-3) -> bool:
    """Equal up to float rounding, measured on the whole vector (a step is ~75k numbers)."""
    return float((a - b).norm()) <= rtol * float(b.norm()) + 1e-9


def _name_the_step(used, grad, stale, clip: float) -> str:
    """What the learner's step did, in words, when it is not clip(grad) with agent.config.grad_clip.
    `used` is the gradient the step used, (before - after) / lr under plain SGD."""
    clipped = lambda g, c: g * min(1.0, c / (float(g.norm()) + 1e-6))  # noqa: E731
    if _close(used, clipped(grad + stale, clip)):
        return ("the parameters moved by this batch's gradient PLUS the gradient left in .grad by an earlier step: "
                "PyTorch accumulates gradients, so call agent.optimizers['model'].zero_grad() before loss.backward()")
    if _close(used, grad + stale) and not _close(grad + stale, clipped(grad + stale, clip)):
        return ("the step used the unclipped sum of this batch's gradient and an earlier one: zero_grad() is missing, "
                "and the clip comes too late (after step) or not at all")
    if _close(used, grad.clamp(-clip, clip)):
        return ("you clipped each gradient ELEMENT to [-grad_clip, grad_clip] (clip_grad_value_); Dreamer clips the "
                "global NORM of all the world model's gradients together: nn.utils.clip_grad_norm_(agent.params"
                "['model'], agent.config.grad_clip)")
    for base, extra in ((grad, ""), (grad + stale, " (and zero_grad() is missing: the gradient also holds an "
                                                    "earlier batch's, which PyTorch accumulates)")):
        cosine = float(used @ base) / (float(used.norm()) * float(base.norm()) + 1e-12)
        if cosine < 1 - 1e-5:
            continue
        used_norm, base_norm = float(used.norm()), float(base.norm())
        if abs(used_norm - base_norm) <= 1e-3 * base_norm:
            return (f"the step used the UNCLIPPED gradient (norm {base_norm:.4g}), but agent.config.grad_clip is "
                    f"{clip:g} here: clip with nn.utils.clip_grad_norm_(agent.params['model'], agent.config.grad_clip) "
                    "after backward() and BEFORE optimizer.step() (clipping after the step changes nothing that was "
                    f"used; a hard-coded max norm above {base_norm:.3g}, such as the paper's 100, does nothing)"
                    + extra)
        if used_norm < base_norm:
            return (f"you clipped to {used_norm:.4g} (the gradient's norm was {base_norm:.4g}); use "
                    f"agent.config.grad_clip, which is {clip:g} in this check, never a number of your own" + extra)
    return ""


def _count_steps(optimizer) -> list:
    """Count the calls of optimizer.step (in a list, so that the caller sees the count change)."""
    count, step = [0], optimizer.step

    def counted(*args, **kwargs):
        count[0] += 1
        return step(*args, **kwargs)

    optimizer.step = counted
    return count


def _check_world_model_step(world_model_step, clip: float) -> None:
    ex = "4.1"
    lr = 1.0
    agent, library, twin = (_tiny_agent(grad_clip=clip) for _ in range(3))
    _sgd(agent, lr)
    _sgd(library, lr)
    # Any batch would do (the learner's step and the library's see the same one); seed 0's has the
    # gradient norm of about 14 that ACTIVE_CLIP sits below.
    batch, earlier = (random_batch(batch_size=2, seq_len=4, action_size=2, seed=seed) for seed in (0, 1))
    model = agent.params["model"]
    before = _flat(model)
    others = {group: _flat(agent.params[group]) for group in ("actor", "critic")}

    # The reference: the library's world-model step on an identical agent, same batch, same samples.
    torch.manual_seed(1)
    reference_metrics = library.update_world_model(batch)
    expected = (before - _flat(library.params["model"])) / lr
    # For naming mistakes: this batch's gradient, unclipped, and left-over gradients from an
    # earlier batch, as a previous update leaves them in .grad.
    torch.manual_seed(1)
    grad = _grads(twin, batch)
    stale = _grads(twin, earlier)
    offset = 0
    for p in model:
        p.grad = stale[offset:offset + p.numel()].view_as(p).clone()
        offset += p.numel()

    steps = _count_steps(agent.optimizers["model"])
    torch.manual_seed(1)  # the same posterior samples as the gradient above
    metrics = call(ex, world_model_step, agent, batch, what=f"calling your world_model_step(agent, batch) "
                                                             f"(with agent.config.grad_clip = {clip:g})",
                   hints=STEP_HINTS)
    used = (before - _flat(model)) / lr
    for group, values in others.items():
        if not torch.equal(values, _flat(agent.params[group])):
            fail(ex, f"the {group}'s parameters changed. Step only agent.optimizers['model']: the world model "
                     "trains here, the actor and critic have their own losses (lesson 5).")
    if used.abs().max() == 0:
        fail(ex, "the world model's parameters did not change. After loss.backward() and clipping, call "
                 "agent.optimizers['model'].step() (not the actor's or critic's optimiser).")
    if steps[0] == 0:
        fail(ex, "the world model's parameters changed, but agent.optimizers['model'].step() was never called: you "
                 "stepped another optimiser (one you created?). Use the agent's own, agent.optimizers['model']: it "
                 "keeps its state (Adam's moment estimates) from one update to the next, and has the model's "
                 "learning rate.")
    if steps[0] > 1:
        fail(ex, f"agent.optimizers['model'].step() was called {steps[0]} times in one update; call it once.")
    if not _close(used, expected):
        mistake = _name_the_step(used, grad, stale, clip)
        if mistake:
            fail(ex, mistake + ".")
        error = float((used - expected).norm() / expected.norm())
        fail(ex, f"the parameter update differs from the library's DreamerV1.update_world_model on the same batch "
                 f"(relative error {error:.3g}, with agent.config.grad_clip = {clip:g}). Use "
                 "agent.world_model_loss(...), zero_grad, backward, clip_grad_norm_ with agent.config.grad_clip, then "
                 "agent.optimizers['model'].step().")
    if not isinstance(metrics, dict) or "image_loss" not in metrics:
        fail(ex, "return the metrics dict of world_model_loss (with image_loss, reward_loss, kl, ...); got "
                 f"{type(metrics).__name__}" + (" (did you forget `return`?)" if metrics is None else "") + ".")
    if any(isinstance(v, torch.Tensor) and v.requires_grad for v in metrics.values()):
        fail(ex, "detach the returned metrics (v.detach()): kept graphs hold on to memory across updates.")
    if "model_grad_norm" not in metrics:
        fail(ex, "the metrics have no 'model_grad_norm': keep what nn.utils.clip_grad_norm_ returns (the norm "
                 "before clipping) as metrics['model_grad_norm'], to see how often the clip acts.")
    norm, reference_norm = metrics["model_grad_norm"], reference_metrics["model_grad_norm"]
    if not (isinstance(norm, torch.Tensor) and norm.numel() == 1 or isinstance(norm, float)):
        fail(ex, "metrics['model_grad_norm'] should be the one-number tensor clip_grad_norm_ returns; got "
                 f"{type(norm).__name__}" + (f" of shape {tuple(norm.shape)}" if isinstance(norm, torch.Tensor) else "")
                 + ".")
    norm = float(norm)
    if abs(norm - float(reference_norm)) > 1e-3 * float(reference_norm):
        after = " (the norm AFTER clipping: keep the return value of clip_grad_norm_, the norm before)" \
            if abs(norm - clip) < 1e-3 * clip else ""
        fail(ex, f"metrics['model_grad_norm'] is {norm:.4g}; the gradient's norm before clipping is "
                 f"{float(reference_norm):.4g}{after}.")


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
        post = observe(images[:context], actions[:context])
        last = post.at(-1)
        variants["the prior starts from the last posterior's MEAN (stoch = mean): continue from the posterior state "
                 "itself, posteriors.at(-1), whose stoch is the sample the model filtered with; the prior's own "
                 "noise comes after"] = decode(post, rssm.rollout_prior(actions[context:],
                                                        last._replace(stoch=last.mean)))
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
    data = random_batch(batch_size=batch, seq_len=steps, action_size=agent.action_size, seed=0)
    images, actions = (torch.as_tensor(data[key], device=agent.device) for key in ("image", "action"))
    with evaluate.seeded(0, agent.device):  # leave the notebook's random numbers as they were
        expected = agent.open_loop(images, actions, context)
        torch.manual_seed(0)
        out = call(ex, open_loop, agent, images, actions, context,
                   what=f"calling your open_loop(agent, images (T={steps}, B={batch}, 64, 64, 3), actions, "
                        f"context={context})",
                   hints=((r"has no attribute 'at'|RSSMState", "rollout_observation returns (posteriors, priors), each "
                           "an RSSMState of (T, B, ...) tensors; its last state is posteriors.at(-1)."),))
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
