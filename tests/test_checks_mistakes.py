"""Every check rejects the mistake it names, with a message that names it.

One buggy learner function per classic mistake: the ones the review of issue 14 found, the
"classic mistakes" the lessons point out next to an exercise, and those the course's seed notes
suggest (the critic as a plain MSE, the actor loss without weights). Each test writes the
mistake as a learner would, in a few lines, runs the check, and requires a CheckFailed whose
message names the mistake, not only "max error at index ...". Errors raised by the learner's
own code must come back as CheckFailed too, naming the exercise and the likely cause.
"""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dreamer_lib import actor_critic as ac
from dreamer_lib import networks, rssm
from dreamer_lib.buffer import KEYS
from dreamer_lib.course.checks import CheckFailed, call
from dreamer_lib.course.checks import actor_critic as ac_checks
from dreamer_lib.course.checks import world_model as wm_checks
from dreamer_lib.course.checks.actor_critic import backwards
from dreamer_lib.course.checks.buffer import check_sample_windows
from dreamer_lib.course.checks.envs import check_repeat_action
from dreamer_lib.course.checks.networks import check_conv_decoder, check_conv_encoder
from dreamer_lib.course.checks.rssm import check_kl_divergence, check_kl_loss, check_rssm_step
from dreamer_lib.rssm import RSSM, RSSMState


def rejects(check, wrong, *phrases: str) -> str:
    """Run `check(wrong)`; it must fail, and its message must contain every phrase (literally)."""
    with pytest.raises(CheckFailed) as failure:
        check(wrong)
    message = str(failure.value)
    for phrase in phrases:
        assert phrase in message, f"{phrase!r} not in the message:\n{message}"
    assert "max error" not in message or len(phrases) == 0, message
    return message


# ====================================================================== the shared helper
def test_call_turns_learner_exceptions_into_named_failures():
    def learner(x):
        return x.not_a_method()  # the learner's line

    with pytest.raises(CheckFailed) as failure:
        call("9.9", learner, torch.zeros(1), what="calling your learner")
    message = str(failure.value)
    assert message.startswith("Exercise 9.9: calling your learner raised AttributeError")
    assert "x.not_a_method()" in message  # the line of the learner's code that raised
    assert isinstance(failure.value.learner_error, AttributeError)


def test_call_lets_an_unfilled_blank_through():
    def blank():
        raise NotImplementedError("Exercise 9.9: write me")

    with pytest.raises(NotImplementedError, match="Exercise 9.9"):
        call("9.9", blank)


def test_call_puts_the_checks_own_hint_first():
    with pytest.raises(CheckFailed, match="my hint"):
        call("9.9", lambda: torch.zeros(2) + torch.zeros(3), hints=((r"size of tensor", "my hint"),))


# ====================================================================== 0.1 action repeat
def old_gym_api(env, action, repeat):
    total = 0.0
    for _ in range(repeat):
        observation, reward, done, info = env.step(action)
        total += reward
        if done:
            break
    return observation, total, done, False, info


def first_observation(env, action, repeat):
    total, first = 0.0, None
    for _ in range(repeat):
        observation, reward, terminated, truncated, info = env.step(action)
        first = observation if first is None else first
        total += reward
        if terminated or truncated:
            break
    return first, total, terminated, truncated, info


def scaled_action(env, action, repeat):
    total = 0.0
    for _ in range(repeat):
        observation, reward, terminated, truncated, info = env.step(2 * action)
        total += reward
        if terminated or truncated:
            break
    return observation, total, terminated, truncated, info


def ignores_truncated(env, action, repeat):
    total = 0.0
    for _ in range(repeat):
        observation, reward, terminated, truncated, info = env.step(action)
        total += reward
        if terminated:
            break
    return observation, total, terminated, truncated, info


@pytest.mark.parametrize("wrong,phrases", [
    (old_gym_api, ["raised ValueError", "gymnasium env.step returns 5 values"]),
    (first_observation, ["observation of the LAST frame"]),
    (scaled_action, ["same action to every env.step call, unchanged"]),
    (ignores_truncated, ["kept stepping after the episode ended"]),
])
def test_repeat_action_mistakes(wrong, phrases):
    rejects(check_repeat_action, wrong, "Exercise 0.1", *phrases)


# ====================================================================== 2.1 sample windows
def _windows(episodes, batch_size, seq_len, rng, start_bound=lambda rows, seq_len: rows - seq_len + 1):
    candidates = [e for e in episodes if len(e["image"]) >= seq_len]
    chosen = []
    for index in rng.integers(len(candidates), size=batch_size):
        episode = candidates[index]
        chosen.append((episode, rng.integers(start_bound(len(episode["image"]), seq_len))))
    return {k: np.stack([e[k][s:s + seq_len] for e, s in chosen], axis=1) for k in KEYS}


def no_value_error(episodes, batch_size, seq_len, rng):
    if not any(len(e["image"]) >= seq_len for e in episodes):
        return {k: np.zeros((seq_len, 0)) for k in KEYS}  # an empty batch instead of an error
    return _windows(episodes, batch_size, seq_len, rng)


def starts_too_late(episodes, batch_size, seq_len, rng):
    return _windows(episodes, batch_size, seq_len, rng, start_bound=lambda rows, seq_len: rows - seq_len + 2)


@pytest.mark.parametrize("wrong,phrases", [
    (no_value_error, ["raise a ValueError"]),
    (starts_too_late, ["raised ValueError", "cut short by the episode's end"]),
])
def test_sample_windows_mistakes(wrong, phrases):
    rejects(check_sample_windows, wrong, "Exercise 2.1", *phrases)


# ====================================================================== 1.1 encoder
def _encode(module, images, skip=(), after=lambda x: x):
    batch_shape = images.shape[:-3]
    x = images.reshape(-1, *images.shape[-3:])
    for index, layer in enumerate(module.convs):
        if index not in skip and not (isinstance(layer, nn.ReLU) and "all" in skip):
            x = layer(x)
    return after(x).reshape(*batch_shape, module.embed_size)


class EncoderNoReLU(networks.ConvEncoder):  # only the Conv2d layers of self.convs
    def forward(self, images):
        return _encode(self, images, skip=("all",))


class EncoderNoReLUChannelsLast(networks.ConvEncoder):  # two mistakes: the linearity still shows
    def forward(self, images):
        return _encode(self, images, skip=("all",), after=lambda x: x.permute(0, 2, 3, 1))


class EncoderNoLastReLU(networks.ConvEncoder):
    def forward(self, images):
        return _encode(self, images, skip=(7,))


class EncoderNoLastReLUChannelsLast(networks.ConvEncoder):  # two mistakes: the negatives still show
    def forward(self, images):
        return _encode(self, images, skip=(7,), after=lambda x: x.permute(0, 2, 3, 1))


class EncoderNormalisesAgain(networks.ConvEncoder):
    def forward(self, images):
        return super().forward(images / 255 - 0.5)


class EncoderNoReturn(networks.ConvEncoder):
    def forward(self, images):
        self.convs(images.reshape(-1, *images.shape[-3:]))


@pytest.mark.parametrize("wrong,phrases", [
    (EncoderNoReLU, ["no ReLU at all", "linear"]),
    (EncoderNoReLUChannelsLast, ["your encoder is linear (affine)", "ReLUs are missing"]),
    (EncoderNoLastReLU, ["without the last ReLU"]),
    (EncoderNoLastReLUChannelsLast, ["negative entries", "a ReLU is missing"]),
    (EncoderNormalisesAgain, ["normalising the images again"]),
    (EncoderNoReturn, ["should return a tensor; got NoneType"]),
])
def test_encoder_mistakes(wrong, phrases):
    rejects(check_conv_encoder, wrong, "Exercise 1.1", *phrases)


# ====================================================================== 1.2 decoder
def _decode(module, features, dense=lambda x: x, last=lambda x: x, bias=True):
    batch_shape = features.shape[:-1]
    x = module.deconv1(dense(module.dense(features.reshape(-1, features.shape[-1]))))
    x = torch.relu(x.reshape(-1, 4 * module.depth, 5, 5) + (module.deconv1_bias if bias else 0))
    return last(module.deconvs(x)).reshape(*batch_shape, 3, 64, 64)


class DecoderSigmoid(networks.ConvDecoder):  # "pixels are in [0, 1]"
    def forward(self, features):
        return _decode(self, features, last=torch.sigmoid)


class DecoderSigmoidNoBias(networks.ConvDecoder):  # two mistakes: the (0, 1) range still shows
    def forward(self, features):
        return _decode(self, features, last=torch.sigmoid, bias=False)


class DecoderFinalReLU(networks.ConvDecoder):
    def forward(self, features):
        return _decode(self, features, last=torch.relu)


class DecoderReLUAfterDense(networks.ConvDecoder):  # the lesson: "self.dense has no activation after it"
    def forward(self, features):
        return _decode(self, features, dense=torch.relu)


@pytest.mark.parametrize("wrong,phrases", [
    (DecoderSigmoid, ["with a sigmoid after the last transposed conv", "unbounded"]),
    (DecoderSigmoidNoBias, ["lies in (0, 1)", "as after a sigmoid", "unbounded"]),
    (DecoderFinalReLU, ["with a ReLU after the last transposed conv"]),
    (DecoderReLUAfterDense, ["with a ReLU after self.dense"]),
])
def test_decoder_mistakes(wrong, phrases):
    rejects(check_conv_decoder, wrong, "Exercise 1.2", *phrases)


# ====================================================================== 3.1 KL divergence
def kl_with_missing_attribute(q, p):
    return 0.5 * (q.var / p.var).sum(-1)  # RSSMState has std, not var


def test_kl_divergence_exception_is_explained():
    rejects(check_kl_divergence, kl_with_missing_attribute, "Exercise 3.1", "raised AttributeError",
            "q.var / p.var")


# ====================================================================== 3.2 KL loss
def kl_loss_reversed(posterior, prior, free_nats=3.0):  # lesson 7's bug, written by a learner
    kl = rssm.kl_divergence(prior, posterior).mean()
    return torch.clamp(kl, min=free_nats), kl


def kl_loss_tf1(posterior, prior, free_nats=3.0):  # the per-element form lesson 3 shows for comparison
    kl = rssm.kl_divergence(posterior, prior)
    return torch.clamp(kl - free_nats, min=0).mean(), kl.mean()


def kl_loss_tf1_offset(posterior, prior, free_nats=3.0):
    kl = rssm.kl_divergence(posterior, prior)
    return torch.clamp(kl, min=free_nats).mean(), kl.mean()


def kl_loss_fixed_free_nats(posterior, prior, free_nats=3.0):
    kl = rssm.kl_divergence(posterior, prior).mean()
    return torch.clamp(kl, min=3.0), kl


def kl_loss_prior_detached(posterior, prior, free_nats=3.0):
    kl = rssm.kl_divergence(posterior, prior.detach()).mean()
    return torch.clamp(kl, min=free_nats), kl


def kl_loss_sum_over_time(posterior, prior, free_nats=3.0):
    kl = rssm.kl_divergence(posterior, prior)
    return torch.clamp(kl.sum(0).mean(), min=free_nats), kl.mean()


@pytest.mark.parametrize("wrong,phrases", [
    (kl_loss_reversed, ["you computed KL(prior || posterior); Dreamer's loss is KL(posterior || prior)"]),
    (kl_loss_tf1, ["mean(max(KL - free_nats, 0))", "per-element TF1 form the lesson shows"]),
    (kl_loss_tf1_offset, ["mean(max(KL, free_nats))", "per-element TF1 form the lesson shows"]),
    (kl_loss_fixed_free_nats, ["you clamp at 3 whatever free_nats says"]),
    (kl_loss_prior_detached, ["no gradient reaches the prior"]),
    (kl_loss_sum_over_time, ["summed over time and averaged over the batch"]),
])
def test_kl_loss_mistakes(wrong, phrases):
    rejects(check_kl_loss, wrong, "Exercise 3.2", *phrases)


# ====================================================================== 3.3 RSSM step
class PriorFromOldH(RSSM):  # the prior's Gaussian reads h_{t-1}
    def prior(self, prev_state, prev_action):
        x = F.elu(self.input_layer(torch.cat([prev_state.stoch, prev_action], -1)))
        deter = self.gru(x, prev_state.deter)
        return self._gaussian(self.prior_stats(F.elu(self.prior_hidden(prev_state.deter))), deter)


class PriorGRUFromZero(RSSM):
    def prior(self, prev_state, prev_action):
        x = F.elu(self.input_layer(torch.cat([prev_state.stoch, prev_action], -1)))
        deter = self.gru(x)
        return self._gaussian(self.prior_stats(F.elu(self.prior_hidden(deter))), deter)


class PriorNoInputELU(RSSM):
    def prior(self, prev_state, prev_action):
        x = self.input_layer(torch.cat([prev_state.stoch, prev_action], -1))
        deter = self.gru(x, prev_state.deter)
        return self._gaussian(self.prior_stats(F.elu(self.prior_hidden(deter))), deter)


class PriorActionFirst(RSSM):
    def prior(self, prev_state, prev_action):
        x = F.elu(self.input_layer(torch.cat([prev_action, prev_state.stoch], -1)))
        deter = self.gru(x, prev_state.deter)
        return self._gaussian(self.prior_stats(F.elu(self.prior_hidden(deter))), deter)


class PriorGRUArgumentsSwapped(RSSM):
    def prior(self, prev_state, prev_action):
        x = F.elu(self.input_layer(torch.cat([prev_state.stoch, prev_action], -1)))
        deter = self.gru(prev_state.deter, x)
        return self._gaussian(self.prior_stats(F.elu(self.prior_hidden(deter))), deter)


class PriorNoReturn(RSSM):
    def prior(self, prev_state, prev_action):
        super().prior(prev_state, prev_action)


class MeanStdSwapped(RSSM):
    def _gaussian(self, stats, deter):
        std, mean = stats.float().chunk(2, -1)
        std = F.softplus(std) + self.min_std
        return RSSMState(mean, std, mean + std * torch.randn_like(std), deter)


class ExpStd(RSSM):
    def _gaussian(self, stats, deter):
        mean, std = stats.float().chunk(2, -1)
        std = std.exp() + self.min_std
        return RSSMState(mean, std, mean + std * torch.randn_like(std), deter)


class PosteriorEmbedFirst(RSSM):
    def posterior(self, prior, embed):
        x = F.elu(self.posterior_hidden(torch.cat([embed, prior.deter], -1)))
        return self._gaussian(self.posterior_stats(x), prior.deter)


class PosteriorNoELU(RSSM):
    def posterior(self, prior, embed):
        x = self.posterior_hidden(torch.cat([prior.deter, embed], -1))
        return self._gaussian(self.posterior_stats(x), prior.deter)


@pytest.mark.parametrize("wrong,phrases", [
    (PriorFromOldH, ["computed from h_{t-1} (prev_state.deter)", "NEW h_t that the GRU just computed"]),
    (PriorGRUFromZero, ["GRU cell run from a zero state"]),
    (PriorNoInputELU, ["without the ELU on the input layer"]),
    (PriorActionFirst, ["concatenated as [a_{t-1}, z_{t-1}]"]),
    (PriorGRUArgumentsSwapped, ["RSSM.prior(prev_state, prev_action) raised RuntimeError", "self.gru(x, "
                                "prev_state.deter)"]),
    (PriorNoReturn, ["got NoneType", "forget `return`"]),
    (MeanStdSwapped, ["the mean and the std are swapped"]),
    (ExpStd, ["std = exp(raw) + min_std", "softplus"]),
    (PosteriorEmbedFirst, ["concatenated as [embed, h_t]"]),
    (PosteriorNoELU, ["without the ELU after posterior_hidden"]),
])
def test_rssm_step_mistakes(wrong, phrases):
    rejects(check_rssm_step, wrong, "Exercise 3.3", *phrases)


# ====================================================================== 4.1 world-model step
def _step(agent, batch, clip=None, clip_fn=None, zero_grad=True, optimizer=None, norm_after=False):
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


def step_guessed_clip(agent, batch):  # clips to the active value of the check, whatever the config says
    return _step(agent, batch, clip=wm_checks.ACTIVE_CLIP)


def step_metrics_not_detached(agent, batch):
    images, actions, rewards, discounts = agent.to_batch(batch)
    loss, _, metrics = agent.world_model_loss(images, actions, rewards, discounts)
    agent.optimizers["model"].zero_grad()
    loss.backward()
    metrics["model_grad_norm"] = nn.utils.clip_grad_norm_(agent.params["model"], agent.config.grad_clip)
    agent.optimizers["model"].step()
    return metrics


@pytest.mark.parametrize("wrong,phrases", [
    (step_metrics_not_detached, ["detach the returned metrics"]),
    (step_clip_one, ["you clipped to 1 ", "use agent.config.grad_clip"]),
    (step_clip_paper, ["UNCLIPPED gradient", "such as the paper's 100, does nothing"]),
    (step_clip_value, ["clip_grad_value_", "global NORM"]),
    (step_new_optimizer, ["agent.optimizers['model'].step() was never called"]),
    (step_norm_after_clip, ["the norm AFTER clipping"]),
    (step_no_norm_metric, ["no 'model_grad_norm'"]),
    (step_wrong_attribute, ["raised AttributeError", "agent.optimizers['model']"]),
    (step_guessed_clip, ["you clipped to 0.37", "use agent.config.grad_clip"]),
])
def test_world_model_step_mistakes(wrong, phrases):
    rejects(wm_checks.check_world_model_step, wrong, "Exercise 4.1", *phrases)


@pytest.mark.parametrize("active,idle", [(0.37, 4321.0), (1.0, 100.0), (100.0, 1e6), (5.0, 0.05)])
def test_world_model_step_accepts_a_correct_step_for_any_clip(active, idle, monkeypatch, capsys):
    """Whatever grad_clip the check runs with (the paper's 100 included), the correct step passes:
    no 'UNCLIPPED' for a clip that does nothing."""
    monkeypatch.setattr(wm_checks, "ACTIVE_CLIP", active)
    monkeypatch.setattr(wm_checks, "IDLE_CLIP", idle)
    wm_checks.check_world_model_step(_step)
    assert "4.1 passed" in capsys.readouterr().out


# ====================================================================== 5.1 lambda-returns
def returns_values_last(rewards, values, discounts, bootstrap, lambda_=0.95):
    next_values = torch.cat([values[1:], values[-1:]], 0)
    return backwards(rewards + discounts * (1 - lambda_) * next_values, values[-1], discounts * lambda_)


def returns_start_from_values_last(rewards, values, discounts, bootstrap, lambda_=0.95):
    next_values = torch.cat([values[1:], bootstrap[None]], 0)
    return backwards(rewards + discounts * (1 - lambda_) * next_values, values[-1], discounts * lambda_)


def returns_in_place(rewards, values, discounts, bootstrap, lambda_=0.95):
    next_values = torch.cat([values[1:], bootstrap[None]], 0)
    inputs = rewards + discounts * (1 - lambda_) * next_values
    out, last = torch.zeros_like(rewards), bootstrap
    for t in reversed(range(rewards.shape[0])):
        out[t] = inputs[t] + discounts[t] * lambda_ * last
        last = out[t]
    return out


def returns_numpy(rewards, values, discounts, bootstrap, lambda_=0.95):
    r, v, d, b = (x.numpy() for x in (rewards, values, discounts, bootstrap))
    return torch.as_tensor(r + d * v + b)


def returns_bootstrap_without_time(rewards, values, discounts, bootstrap, lambda_=0.95):
    next_values = torch.cat([values[1:], bootstrap], 0)
    return backwards(rewards + discounts * (1 - lambda_) * next_values, bootstrap, discounts * lambda_)


def returns_from_zero(rewards, values, discounts, bootstrap, lambda_=0.95):
    next_values = torch.cat([values[1:], bootstrap[None]], 0)
    inputs = rewards + discounts * (1 - lambda_) * next_values
    return backwards(inputs, torch.zeros_like(bootstrap), discounts * lambda_)


def returns_without_discounts(rewards, values, discounts, bootstrap, lambda_=0.95):
    next_values = torch.cat([values[1:], bootstrap[None]], 0)
    return backwards(rewards + (1 - lambda_) * next_values, bootstrap, torch.full_like(discounts, lambda_))


def returns_recursion_without_lambda(rewards, values, discounts, bootstrap, lambda_=0.95):
    next_values = torch.cat([values[1:], bootstrap[None]], 0)
    return backwards(rewards + discounts * (1 - lambda_) * next_values, bootstrap, discounts)


@pytest.mark.parametrize("wrong,phrases", [
    (returns_from_zero, ["starts from 0 instead of the bootstrap value"]),
    (returns_without_discounts, ["The discounts are missing"]),
    (returns_recursion_without_lambda, ["multiplied by d_t only; it needs d_t * lambda"]),
    (returns_values_last, ["You bootstrap with values[-1] instead of the `bootstrap` argument"]),
    (returns_start_from_values_last, ["values[-1] instead of the `bootstrap` argument as the start of the recursion"]),
    (returns_in_place, ["backpropagating through your returns raised RuntimeError", "in-place operation"]),
    (returns_numpy, ["raised RuntimeError", "Keep the computation in torch"]),
    (returns_bootstrap_without_time, ["raised RuntimeError", "bootstrap[None]"]),
])
def test_lambda_returns_mistakes(wrong, phrases):
    rejects(ac_checks.check_lambda_returns, wrong, "Exercise 5.1", *phrases)


# ====================================================================== 5.2 actor loss
def actor_loss_sum(lambda_returns, discounts):
    return -(ac.discount_weights(discounts) * lambda_returns).sum()


def actor_loss_seed_notes(lambda_returns, discounts):  # the seed notes' "actor_loss = -mean(lambda_returns)"
    return -lambda_returns.mean()


@pytest.mark.parametrize("wrong,phrases", [
    (actor_loss_sum, ["not the sum"]),
    (actor_loss_seed_notes, ["forgot the discount weights"]),
])
def test_actor_loss_mistakes(wrong, phrases):
    rejects(ac_checks.check_actor_loss, wrong, "Exercise 5.2", *phrases)


# ====================================================================== 5.3 critic loss
def critic_mse(values, lambda_returns, discounts):  # the seed notes' "MSE(predicted_values, lambda_returns)"
    return F.mse_loss(values, lambda_returns)


def critic_mse_detached(values, lambda_returns, discounts):
    return F.mse_loss(values, lambda_returns.detach())


def critic_half_mse(values, lambda_returns, discounts):
    return 0.5 * F.mse_loss(values, lambda_returns.detach())


def critic_weighted_sum(values, lambda_returns, discounts):
    return (ac.discount_weights(discounts) * 0.5 * (values - lambda_returns.detach()).pow(2)).sum()


def test_critic_loss_plain_mse_names_all_three():
    message = rejects(ac_checks.check_critic_loss, critic_mse, "Exercise 5.3", "plain MSE", "lacks 3 things",
                      "forgot the discount weights", "dropped the 0.5", "detach the target")
    assert message.index("(1)") < message.index("(2)") < message.index("(3)")


@pytest.mark.parametrize("wrong,phrases,absent", [
    (critic_mse_detached, ["plain MSE", "lacks 2 things", "forgot the discount weights", "dropped the 0.5"],
     "detach the target"),
    (critic_half_mse, ["forgot the discount weights"], "dropped the 0.5"),
    (critic_weighted_sum, ["not the sum"], "weights"),
])
def test_critic_loss_mistakes(wrong, phrases, absent):
    message = rejects(ac_checks.check_critic_loss, wrong, "Exercise 5.3", *phrases)
    assert absent not in message


# ====================================================================== 5.4 imagination step
def imagine_sample(rssm, actor, state):  # .sample() instead of .rsample()
    action = actor(state.features.detach()).sample()
    return action, rssm.prior(state, action)


def imagine_actor_on_state(rssm, actor, state):
    action = actor(state).rsample()
    return action, rssm.prior(state, action)


def imagine_prior_arguments_swapped(rssm, actor, state):
    action = actor(state.features.detach()).rsample()
    return action, rssm.prior(action, state)


def imagine_distribution_to_prior(rssm, actor, state):
    dist = actor(state.features.detach())
    return dist, rssm.prior(state, dist)


def imagine_detached_action_to_prior(rssm, actor, state):
    action = actor(state.features.detach()).rsample()
    return action, rssm.prior(state, action.detach())


@pytest.mark.parametrize("wrong,phrases", [
    (imagine_detached_action_to_prior, ["No gradient flows from the next state to the actor"]),
    (imagine_sample, ["raised AttributeError", ".sample() gives no gradient: use .rsample()"]),
    (imagine_actor_on_state, ["actor(state.features.detach())"]),
    (imagine_prior_arguments_swapped, ["takes the state first, then the action"]),
    (imagine_distribution_to_prior, ["returns a distribution (TanhNormal)", "dist.rsample()"]),
])
def test_imagine_step_mistakes(wrong, phrases):
    rejects(ac_checks.check_imagine_step, wrong, "Exercise 5.4", *phrases)


# ====================================================================== the references pass
def imagine_step(rssm, actor, state):  # lesson 5's solution
    action = actor(state.features.detach()).rsample()
    return action, rssm.prior(state, action)


def test_every_check_accepts_the_reference(capsys):
    """The library's code (the lessons' solutions, saved from them) passes every check it has."""
    check_conv_encoder(networks.ConvEncoder)
    check_conv_decoder(networks.ConvDecoder)
    check_kl_divergence(rssm.kl_divergence)
    check_kl_loss(rssm.kl_loss)
    check_rssm_step(RSSM)
    wm_checks.check_world_model_step(lambda agent, batch: agent.update_world_model(batch))
    ac_checks.check_lambda_returns(ac.compute_lambda_returns)
    ac_checks.check_discount_weights(ac.discount_weights)
    ac_checks.check_actor_loss(ac.compute_actor_loss)
    ac_checks.check_critic_loss(ac.compute_critic_loss)
    ac_checks.check_imagine_step(imagine_step)
    out = capsys.readouterr().out
    for exercise in ("1.1", "1.2", "3.1", "3.2", "3.3", "4.1", "5.1", "5.2", "5.3", "5.4"):
        assert re.search(rf"Exercise {re.escape(exercise)} passed", out), exercise
