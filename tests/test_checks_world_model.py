"""The lesson-4 checks accept correct code and reject the usual mistakes."""
import pathlib

import jupytext
import pytest
import torch
from torch import nn

from dreamer_lib.course.checks import world_model as wm_checks
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


def _step(agent, batch, clip=None, clip_fn=None, zero_grad=True, optimizer=None, norm_after=False):
    """The lesson's solution, with a mistake chosen by the arguments."""
    images, actions, rewards, discounts = agent.to_batch(batch)
    with agent.autocast():
        loss, _, metrics = agent.world_model_loss(images, actions, rewards, discounts)
    optimizer = optimizer or agent.optimizers["model"]
    if zero_grad:
        optimizer.zero_grad()
    loss.backward()
    max_norm = agent.config.grad_clip if clip is None else clip
    if clip_fn is not None:
        clip_fn(agent.params["model"], max_norm)
        norm = torch.tensor(0.0)
    else:
        norm = nn.utils.clip_grad_norm_(agent.params["model"], max_norm)
    if norm_after:
        norm = torch.cat([p.grad.reshape(-1) for p in agent.params["model"]]).norm()
    metrics["model_grad_norm"] = norm
    optimizer.step()
    return {k: v.detach() for k, v in metrics.items()}


def step_clip_one(agent, batch):  # the value the old check itself used
    return _step(agent, batch, clip=1.0)


def step_clip_paper(agent, batch):  # the paper's 100, typed in
    return _step(agent, batch, clip=100.0)


def step_guessed_clip(agent, batch):  # clips to the active value of the check, whatever the config says
    return _step(agent, batch, clip=wm_checks.ACTIVE_CLIP)


def step_clip_value(agent, batch):
    return _step(agent, batch, clip_fn=nn.utils.clip_grad_value_)


def step_new_optimizer(agent, batch):
    return _step(agent, batch, optimizer=torch.optim.SGD(agent.params["model"], lr=1.0))


def step_norm_after_clip(agent, batch):
    return _step(agent, batch, norm_after=True)


def step_no_norm_metric(agent, batch):
    metrics = _step(agent, batch)
    del metrics["model_grad_norm"]
    return metrics


def step_wrong_attribute(agent, batch):
    loss = agent.world_model_loss(*agent.to_batch(batch))[0]
    agent.optimizer.zero_grad()
    loss.backward()


def step_metrics_not_detached(agent, batch):
    images, actions, rewards, discounts = agent.to_batch(batch)
    loss, _, metrics = agent.world_model_loss(images, actions, rewards, discounts)
    agent.optimizers["model"].zero_grad()
    loss.backward()
    metrics["model_grad_norm"] = nn.utils.clip_grad_norm_(agent.params["model"], agent.config.grad_clip)
    agent.optimizers["model"].step()
    return metrics


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
    assert "Exercise 4.1 passed" in capsys.readouterr().out


@pytest.mark.parametrize("active,idle", [(1.0, 100.0), (100.0, 1e6), (5.0, 0.05)])
def test_world_model_step_accepts_a_correct_step_for_any_clip(active, idle, monkeypatch, capsys):
    """Whatever grad_clip the check runs with (the paper's 100 included), the correct step passes:
    no 'UNCLIPPED' for a clip that does nothing. (The check's own pair: the test above.)"""
    monkeypatch.setattr(wm_checks, "ACTIVE_CLIP", active)
    monkeypatch.setattr(wm_checks, "IDLE_CLIP", idle)
    check_world_model_step(lesson_solution())
    assert "Exercise 4.1 passed" in capsys.readouterr().out


STEP_MISTAKES = {  # the mistake -> what the check's message must say
    step_without_zero_grad: ["accumulates gradients"],
    step_clip_after_step: ["UNCLIPPED"],
    step_wrong_optimizer: ["did not change"],
    step_all_optimizers: ["actor's parameters changed"],
    step_metrics_not_detached: ["detach the returned metrics"],
    step_clip_one: ["you clipped to 1 ", "use agent.config.grad_clip"],
    step_clip_paper: ["UNCLIPPED gradient", "such as the paper's 100, does nothing"],
    step_guessed_clip: ["you clipped to 0.37", "use agent.config.grad_clip"],
    step_clip_value: ["clip_grad_value_", "global NORM"],
    step_new_optimizer: ["agent.optimizers['model'].step() was never called"],
    step_norm_after_clip: ["the norm AFTER clipping"],
    step_no_norm_metric: ["no 'model_grad_norm'"],
    step_wrong_attribute: ["raised AttributeError", "agent.optimizers['model']"],
}


@pytest.mark.parametrize("wrong", STEP_MISTAKES)
def test_world_model_step_rejects(wrong, rejects):
    rejects(check_world_model_step, wrong, "Exercise 4.1", *STEP_MISTAKES[wrong])


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
def open_loop_from_posterior_mean(agent, images, actions, context=5):  # "start from the best estimate"
    rssm = agent.rssm
    start = rssm.get_initial_state(images.shape[1], agent.device)
    posterior, _ = rssm.rollout_observation(agent.encoder(preprocess(images[:context])), actions[:context], start)
    last = posterior.at(-1)
    prior = rssm.rollout_prior(actions[context:], last._replace(stoch=last.mean))
    return to_uint8(torch.cat([agent.decoder(posterior.features), agent.decoder(prior.features)]))


@torch.no_grad()
def open_loop_float(agent, images, actions, context=5):
    return open_loop_reference(agent, images, actions, context).float() / 255


def test_open_loop_reference_passes(capsys):
    check_open_loop(open_loop_reference)
    assert "Exercise 4.2 passed" in capsys.readouterr().out


OPEN_LOOP_MISTAKES = {  # the mistake -> what the check's message must say
    open_loop_late_actions: ["one step late"],
    open_loop_fresh_start: ["fresh initial state"],
    open_loop_keeps_observing: ["filtered with the posterior"],
    open_loop_from_posterior_mean: ["starts from the last posterior's MEAN"],
    open_loop_float: ["should be uint8"],
}


@pytest.mark.parametrize("wrong", OPEN_LOOP_MISTAKES)
def test_open_loop_rejects(wrong, rejects):
    rejects(check_open_loop, wrong, "Exercise 4.2", *OPEN_LOOP_MISTAKES[wrong])
