"""The lesson-4 checks accept correct code and reject the usual mistakes."""
import pathlib

import jupytext
import pytest
import torch
from torch import nn

from dreamer_lib.course.checks import CheckFailed
from dreamer_lib.course.checks.world_model import check_open_loop, check_world_model_step
from dreamer_lib.networks import preprocess, to_uint8

ROOT = pathlib.Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- 4.1 world_model_step
def step_reference(agent, batch):  # the library's own world-model step
    return agent.update_world_model(batch)


def lesson_solution():
    """world_model_step as lesson 4 solves exercise 4.1 (zero_grad, backward, clip, step), taken
    from the lesson itself, so the check is known to accept the learner's way of writing it."""
    lesson = jupytext.read(ROOT / "notebooks" / "04_world_model.py")
    cell = next(c.source for c in lesson.cells if c.cell_type == "code" and "def world_model_step" in c.source)
    namespace = {"nn": nn, "torch": torch}
    exec(cell, namespace)
    return namespace["world_model_step"]


def step_without_zero_grad(agent, batch):
    loss, _, metrics = agent.world_model_loss(*agent.to_batch(batch))
    loss.backward()
    nn.utils.clip_grad_norm_(agent.params["model"], agent.config.grad_clip)
    agent.optimizers["model"].step()
    return {k: v.detach() for k, v in metrics.items()}


def step_clip_after_step(agent, batch):
    loss, _, metrics = agent.world_model_loss(*agent.to_batch(batch))
    agent.optimizers["model"].zero_grad()
    loss.backward()
    agent.optimizers["model"].step()
    nn.utils.clip_grad_norm_(agent.params["model"], agent.config.grad_clip)
    return {k: v.detach() for k, v in metrics.items()}


def step_wrong_optimizer(agent, batch):
    loss, _, metrics = agent.world_model_loss(*agent.to_batch(batch))
    agent.optimizers["actor"].zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(agent.params["model"], agent.config.grad_clip)
    agent.optimizers["actor"].step()
    return {k: v.detach() for k, v in metrics.items()}


def step_all_optimizers(agent, batch):
    return agent.update(batch)


@pytest.mark.parametrize("step", [step_reference, "lesson"], ids=["update_world_model", "lesson_solution"])
def test_world_model_step_accepts(step, capsys):
    check_world_model_step(lesson_solution() if step == "lesson" else step)
    assert "passed" in capsys.readouterr().out


@pytest.mark.parametrize("wrong,message", [
    (step_without_zero_grad, "accumulates gradients"),
    (step_clip_after_step, "UNCLIPPED"),
    (step_wrong_optimizer, "did not change"),
    (step_all_optimizers, "actor's parameters changed"),
])
def test_world_model_step_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        check_world_model_step(wrong)


def test_world_model_check_keeps_the_callers_random_numbers():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    check_world_model_step(step_reference)
    assert torch.equal(torch.rand(3), expected)


# ---------------------------------------------------------------- 4.2 open_loop
@torch.no_grad()
def open_loop_reference(agent, images, actions, context=5):  # the lesson's solution
    rssm = agent.rssm
    start = rssm.get_initial_state(images.shape[1], agent.device)
    posterior, _ = rssm.rollout_observation(agent.encoder(preprocess(images[:context])), actions[:context], start)
    prior = rssm.rollout_prior(actions[context:], posterior.at(-1))
    return to_uint8(torch.cat([agent.decoder(posterior.features), agent.decoder(prior.features)]))


@torch.no_grad()
def open_loop_late_actions(agent, images, actions, context=5):
    rssm = agent.rssm
    start = rssm.get_initial_state(images.shape[1], agent.device)
    posterior, _ = rssm.rollout_observation(agent.encoder(preprocess(images[:context])), actions[:context], start)
    prior = rssm.rollout_prior(actions[context - 1:-1], posterior.at(-1))
    return to_uint8(torch.cat([agent.decoder(posterior.features), agent.decoder(prior.features)]))


@torch.no_grad()
def open_loop_fresh_start(agent, images, actions, context=5):
    rssm = agent.rssm
    start = rssm.get_initial_state(images.shape[1], agent.device)
    posterior, _ = rssm.rollout_observation(agent.encoder(preprocess(images[:context])), actions[:context], start)
    prior = rssm.rollout_prior(actions[context:], start)
    return to_uint8(torch.cat([agent.decoder(posterior.features), agent.decoder(prior.features)]))


@torch.no_grad()
def open_loop_keeps_observing(agent, images, actions, context=5):
    start = agent.rssm.get_initial_state(images.shape[1], agent.device)
    posterior, _ = agent.rssm.rollout_observation(agent.encoder(preprocess(images)), actions, start)
    return to_uint8(agent.decoder(posterior.features))


@torch.no_grad()
def open_loop_float(agent, images, actions, context=5):
    return open_loop_reference(agent, images, actions, context).float() / 255


def test_open_loop_reference_passes(capsys):
    check_open_loop(open_loop_reference)
    assert "passed" in capsys.readouterr().out


@pytest.mark.parametrize("wrong,message", [
    (open_loop_late_actions, "one step late"),
    (open_loop_fresh_start, "fresh initial state"),
    (open_loop_keeps_observing, "filtered with the posterior"),
    (open_loop_float, "should be uint8"),
])
def test_open_loop_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        check_open_loop(wrong)
