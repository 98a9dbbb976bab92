"""The lesson 5 checks accept the reference and reject the classic mistakes with the right explanation."""
import pytest
import torch
import torch.nn.functional as F

from dreamer_lib import actor_critic as ac
from dreamer_lib.course.checks import actor_critic as checks
from dreamer_lib.course.checks.actor_critic import backwards


# ---------------------------------------------------------------- 5.1
def off_by_one(rewards, values, discounts, bootstrap, lambda_=0.95):
    return backwards(rewards + discounts * (1 - lambda_) * values, bootstrap, discounts * lambda_)


def no_one_minus_lambda(rewards, values, discounts, bootstrap, lambda_=0.95):
    next_values = torch.cat([values[1:], bootstrap[None]], 0)
    return backwards(rewards + discounts * next_values, bootstrap, discounts * lambda_)


def detached(rewards, values, discounts, bootstrap, lambda_=0.95):
    return ac.compute_lambda_returns(rewards, values, discounts, bootstrap, lambda_).detach()


def reversed_order(rewards, values, discounts, bootstrap, lambda_=0.95):
    return ac.compute_lambda_returns(rewards, values, discounts, bootstrap, lambda_).flip(0)


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


def returns_discount_on_bootstrap_only(rewards, values, discounts, bootstrap, lambda_=0.95):
    next_values = torch.cat([values[1:], bootstrap[None]], 0)
    return backwards(rewards + discounts * (1 - lambda_) * next_values, bootstrap, torch.full_like(discounts, lambda_))


def returns_discount_on_recursion_only(rewards, values, discounts, bootstrap, lambda_=0.95):
    next_values = torch.cat([values[1:], bootstrap[None]], 0)
    return backwards(rewards + (1 - lambda_) * next_values, bootstrap, discounts * lambda_)


def returns_discount_outside(rewards, values, discounts, bootstrap, lambda_=0.95):  # d_t (r_t + ...)
    next_values = torch.cat([values[1:], bootstrap[None]], 0)
    return backwards(discounts * (rewards + (1 - lambda_) * next_values), bootstrap, discounts * lambda_)


def returns_loop(rewards, values, discounts, bootstrap, lambda_, cut=lambda x: x):
    """The recursion as a learner writes it, with `cut` applied where a learner might detach."""
    next_values = torch.cat([values[1:], bootstrap[None]], 0)
    out, last = [], bootstrap
    for t in reversed(range(rewards.shape[0])):
        last = rewards[t] + discounts[t] * ((1 - lambda_) * cut(next_values[t]) + lambda_ * last)
        out.append(last)
    return torch.stack(out[::-1])


def returns_values_detached(rewards, values, discounts, bootstrap, lambda_=0.95):
    return returns_loop(rewards, values.detach(), discounts, bootstrap, lambda_)


def returns_discounts_detached(rewards, values, discounts, bootstrap, lambda_=0.95):
    return returns_loop(rewards, values, discounts.detach(), bootstrap, lambda_)


def returns_next_values_detached(rewards, values, discounts, bootstrap, lambda_=0.95):  # bootstrap still has grad
    return returns_loop(rewards, values, discounts, bootstrap, lambda_, cut=torch.Tensor.detach)


def returns_recursion_detached(rewards, values, discounts, bootstrap, lambda_=0.95):  # R_{t+1} cut each step
    next_values = torch.cat([values[1:], bootstrap[None]], 0)
    out, last = [], bootstrap
    for t in reversed(range(rewards.shape[0])):
        last = rewards[t] + discounts[t] * ((1 - lambda_) * next_values[t] + lambda_ * last.detach())
        out.append(last)
    return torch.stack(out[::-1])


def test_lambda_returns_accepts_a_loop(capsys):
    checks.check_lambda_returns(returns_loop)
    assert "Exercise 5.1 passed" in capsys.readouterr().out


def test_lambda_returns_accepts_reference(capsys):
    checks.check_lambda_returns(ac.compute_lambda_returns)
    assert "Exercise 5.1 passed" in capsys.readouterr().out


LAMBDA_RETURNS_MISTAKES = {  # the mistake -> what the check's message must say
    off_by_one: ["NEXT state's value"],
    no_one_minus_lambda: ["(1 - lambda)"],
    detached: ["no gradient"],
    reversed_order: ["reverse time order"],
    returns_from_zero: ["starts from 0 instead of the bootstrap value"],
    returns_without_discounts: ["The discounts are missing"],
    returns_recursion_without_lambda: ["multiplied by d_t only; it needs d_t * lambda"],
    returns_values_last: ["You bootstrap with values[-1] instead of the `bootstrap` argument"],
    returns_start_from_values_last: ["values[-1] instead of the `bootstrap` argument as the start of the recursion"],
    returns_in_place: ["backpropagating from the returns (lambda = 0.95) raised RuntimeError", "in-place operation"],
    returns_numpy: ["raised RuntimeError", "Keep the computation in torch"],
    returns_bootstrap_without_time: ["raised RuntimeError", "bootstrap[None]"],
    returns_discount_on_bootstrap_only: ["lambda R_{t+1} lacks the discount d_t", "multiplies both terms"],
    returns_discount_on_recursion_only: ["(1 - lambda) v_{t+1} lacks the discount d_t", "multiplies both terms"],
    returns_discount_outside: ["You discount the reward r_t too"],
    returns_values_detached: ["No gradient flows from the returns to the values"],
    returns_discounts_detached: ["No gradient flows from the returns to the discounts"],
    returns_next_values_detached: ["No gradient flows from the returns to the values"],
    returns_recursion_detached: ["Part of the gradient from the returns to the rewards is missing",
                                 "is R_{t+1}, the return you carry backwards, detached"],
}


@pytest.mark.parametrize("wrong", LAMBDA_RETURNS_MISTAKES)
def test_lambda_returns_rejects(wrong, rejects):
    rejects(checks.check_lambda_returns, wrong, "Exercise 5.1", *LAMBDA_RETURNS_MISTAKES[wrong])


# ---------------------------------------------------------------- 5.2
def weights_from_d0(discounts):
    return torch.cumprod(discounts, 0).detach()


def weights_not_cumulative(discounts):
    return torch.cat([torch.ones_like(discounts[:1]), discounts[:-1]], 0).detach()


def weights_not_detached(discounts):
    return torch.cumprod(torch.cat([torch.ones_like(discounts[:1]), discounts[:-1]], 0), 0)


def weights_powers_of_first(discounts):  # gamma^t, with gamma read from the first step
    return (discounts[:1] ** torch.arange(discounts.shape[0])[:, None]).detach()


def test_discount_weights_accepts_reference(capsys):
    checks.check_discount_weights(ac.discount_weights)
    assert "Exercise 5.2 passed" in capsys.readouterr().out


DISCOUNT_WEIGHTS_MISTAKES = {  # the mistake -> what the check's message must say
    weights_from_d0: ["start at d_0 instead of 1"],
    weights_not_cumulative: ["not cumulative"],
    weights_not_detached: ["carry a gradient"],
    weights_powers_of_first: ["powers of the first discount, d_0^t", "prod_{k<t} d_k"],
}


@pytest.mark.parametrize("wrong", DISCOUNT_WEIGHTS_MISTAKES)
def test_discount_weights_rejects(wrong, rejects):
    rejects(checks.check_discount_weights, wrong, "Exercise 5.2", *DISCOUNT_WEIGHTS_MISTAKES[wrong])


def actor_loss_wrong_sign(returns, discounts):
    return (ac.discount_weights(discounts) * returns).mean()


def actor_loss_no_weights(returns, discounts):  # the seed notes' "actor_loss = -mean(lambda_returns)"
    return -returns.mean()


def actor_loss_weights_with_gradient(returns, discounts):
    return -(weights_not_detached(discounts) * returns).mean()


def actor_loss_sum(returns, discounts):
    return -(ac.discount_weights(discounts) * returns).sum()


def test_actor_loss_accepts_reference(capsys):
    checks.check_actor_loss(ac.compute_actor_loss)
    assert "Exercise 5.2 passed" in capsys.readouterr().out


ACTOR_LOSS_MISTAKES = {  # the mistake -> what the check's message must say
    actor_loss_wrong_sign: ["sign is wrong"],
    actor_loss_no_weights: ["forgot the discount weights"],
    actor_loss_weights_with_gradient: ["detach the weights"],
    actor_loss_sum: ["not the sum"],
}


@pytest.mark.parametrize("wrong", ACTOR_LOSS_MISTAKES)
def test_actor_loss_rejects(wrong, rejects):
    rejects(checks.check_actor_loss, wrong, "Exercise 5.2", *ACTOR_LOSS_MISTAKES[wrong])


# ---------------------------------------------------------------- 5.3
def critic_loss_target_not_detached(values, lambda_returns, discounts):
    return (ac.discount_weights(discounts) * 0.5 * (values - lambda_returns).pow(2)).mean()


def critic_loss_without_half(values, lambda_returns, discounts):
    return (ac.discount_weights(discounts) * (values - lambda_returns.detach()).pow(2)).mean()


def critic_mse(values, lambda_returns, discounts):  # the seed notes' "MSE(predicted_values, lambda_returns)"
    return F.mse_loss(values, lambda_returns)


def critic_mse_detached(values, lambda_returns, discounts):
    return F.mse_loss(values, lambda_returns.detach())


def critic_half_mse(values, lambda_returns, discounts):
    return 0.5 * F.mse_loss(values, lambda_returns.detach())


def critic_weighted_sum(values, lambda_returns, discounts):
    return (ac.discount_weights(discounts) * 0.5 * (values - lambda_returns.detach()).pow(2)).sum()


def critic_l1(values, lambda_returns, discounts):
    return F.l1_loss(values, lambda_returns.detach())


def critic_weighted_l1(values, lambda_returns, discounts):
    return (ac.discount_weights(discounts) * 0.5 * (values - lambda_returns.detach()).abs()).mean()


def critic_huber(values, lambda_returns, discounts):
    return F.smooth_l1_loss(values, lambda_returns.detach())


def test_critic_loss_accepts_reference(capsys):
    checks.check_critic_loss(ac.compute_critic_loss)
    assert "Exercise 5.3 passed" in capsys.readouterr().out


CRITIC_LOSS_MISTAKES = {  # the mistake -> (what the check's message must say, what it must not)
    critic_loss_target_not_detached: (["detach the target"], []),
    critic_loss_without_half: (["dropped the 0.5"], []),
    critic_mse_detached: (["plain MSE", "lacks 2 things", "forgot the discount weights", "dropped the 0.5"],
                          ["detach the target"]),
    critic_half_mse: (["forgot the discount weights"], ["dropped the 0.5"]),
    critic_weighted_sum: (["not the sum"], ["weights"]),
    critic_l1: (["mean(|v - R|) (F.l1_loss)", "squared error"], []),
    critic_weighted_l1: (["mean(weights * 0.5 |v - R|)", "squared error"], []),
    critic_huber: (["Huber loss", "squared error"], []),
}


@pytest.mark.parametrize("wrong", CRITIC_LOSS_MISTAKES)
def test_critic_loss_rejects(wrong, rejects):
    phrases, absent = CRITIC_LOSS_MISTAKES[wrong]
    rejects(checks.check_critic_loss, wrong, "Exercise 5.3", *phrases, absent=absent)


def test_critic_loss_plain_mse_names_all_three(rejects):
    message = rejects(checks.check_critic_loss, critic_mse, "Exercise 5.3", "plain MSE", "lacks 3 things",
                      "forgot the discount weights", "dropped the 0.5", "detach the target")
    assert message.index("(1)") < message.index("(2)") < message.index("(3)")


# ---------------------------------------------------------------- 5.4
def imagine_step(rssm, actor, state):
    action = actor(state.features.detach()).rsample()
    return action, rssm.prior(state, action)


def imagine_step_not_detached(rssm, actor, state):
    action = actor(state.features).rsample()
    return action, rssm.prior(state, action)


def imagine_step_sample(rssm, actor, state):
    action = torch.tanh(actor(state.features.detach()).normal.sample())
    return action, rssm.prior(state, action)


def imagine_step_mean(rssm, actor, state):
    action = torch.tanh(actor(state.features.detach()).normal.mean)
    return action, rssm.prior(state, action)


def imagine_step_calls_sample(rssm, actor, state):  # .sample() instead of .rsample()
    action = actor(state.features.detach()).sample()
    return action, rssm.prior(state, action)


def imagine_step_actor_on_state(rssm, actor, state):
    action = actor(state).rsample()
    return action, rssm.prior(state, action)


def imagine_step_prior_arguments_swapped(rssm, actor, state):
    action = actor(state.features.detach()).rsample()
    return action, rssm.prior(action, state)


def imagine_step_distribution_to_prior(rssm, actor, state):
    dist = actor(state.features.detach())
    return dist, rssm.prior(state, dist)


def imagine_step_detached_action_to_prior(rssm, actor, state):
    action = actor(state.features.detach()).rsample()
    return action, rssm.prior(state, action.detach())


def imagine_step_state_detached(rssm, actor, state):  # the values are right; the trajectory's gradient is cut
    action = actor(state.features.detach()).rsample()
    return action, rssm.prior(state.detach(), action)


def imagine_step_deter_detached(rssm, actor, state):
    action = actor(state.features.detach()).rsample()
    return action, rssm.prior(state._replace(deter=state.deter.detach()), action)


def test_imagine_step_accepts_reference(capsys):
    rng = torch.get_rng_state()
    checks.check_imagine_step(imagine_step)
    assert "Exercise 5.4 passed" in capsys.readouterr().out
    assert torch.equal(rng, torch.get_rng_state()), "the check must not change the learner's random state"


IMAGINE_STEP_MISTAKES = {  # the mistake -> what the check's message must say
    imagine_step_not_detached: ["not detached"],
    imagine_step_sample: ["use rsample()"],
    imagine_step_mean: ["tanh(mean)"],
    imagine_step_calls_sample: ["raised AttributeError", ".sample() gives no gradient: use .rsample()"],
    imagine_step_actor_on_state: ["actor(state.features.detach())"],
    imagine_step_prior_arguments_swapped: ["takes the state first, then the action"],
    imagine_step_distribution_to_prior: ["returns a distribution (TanhNormal)", "dist.rsample()"],
    imagine_step_detached_action_to_prior: ["No gradient flows from the next state to the actor"],
    imagine_step_state_detached: ["the state you pass to rssm.prior is detached", "after one step"],
    imagine_step_deter_detached: ["no gradient flows from next_state.deter back to its h (state.deter)"],
}


@pytest.mark.parametrize("wrong", IMAGINE_STEP_MISTAKES)
def test_imagine_step_rejects(wrong, rejects):
    rejects(checks.check_imagine_step, wrong, "Exercise 5.4", *IMAGINE_STEP_MISTAKES[wrong])


def test_imagine_step_matches_rollout_imagination():
    """The lesson's claim: stepping imagine_step H times is RSSM.rollout_imagination."""
    from dreamer_lib.rssm import RSSM, stack_states

    torch.manual_seed(0)
    rssm = RSSM(2, 8, 4, 8, 8)
    actor = ac.Actor(rssm.feature_size, 2, units=16)
    start = rssm.get_initial_state(3)
    torch.manual_seed(1)
    expected_states, expected_actions, _ = rssm.rollout_imagination(start, actor, 4)
    torch.manual_seed(1)
    state, states, actions = start, [], []
    for _ in range(4):
        action, state = imagine_step(rssm, actor, state)
        states.append(state)
        actions.append(action)
    assert all(torch.equal(a, b) for a, b in zip(stack_states(states), expected_states))
    assert torch.equal(torch.stack(actions), expected_actions)
