"""The lesson 5 checks accept the reference and reject the classic mistakes with the right explanation."""
import pytest
import torch

from dreamer_lib import actor_critic as ac
from dreamer_lib.course.checks import CheckFailed
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


def test_lambda_returns_accepts_reference(capsys):
    checks.check_lambda_returns(ac.compute_lambda_returns)
    assert "Exercise 5.1 passed" in capsys.readouterr().out


@pytest.mark.parametrize("wrong,message", [
    (off_by_one, "NEXT state's value"),
    (no_one_minus_lambda, "(1 - lambda)"),
    (detached, "no gradient"),
    (reversed_order, "reverse time order"),
])
def test_lambda_returns_rejects(wrong, message):
    with pytest.raises(CheckFailed) as error:
        checks.check_lambda_returns(wrong)
    assert message in str(error.value)


# ---------------------------------------------------------------- 5.2
def weights_from_d0(discounts):
    return torch.cumprod(discounts, 0).detach()


def weights_not_cumulative(discounts):
    return torch.cat([torch.ones_like(discounts[:1]), discounts[:-1]], 0).detach()


def weights_not_detached(discounts):
    return torch.cumprod(torch.cat([torch.ones_like(discounts[:1]), discounts[:-1]], 0), 0)


def test_discount_weights_accepts_reference(capsys):
    checks.check_discount_weights(ac.discount_weights)
    assert "Exercise 5.2 passed" in capsys.readouterr().out


@pytest.mark.parametrize("wrong,message", [
    (weights_from_d0, "start at d_0 instead of 1"),
    (weights_not_cumulative, "not cumulative"),
    (weights_not_detached, "carry a gradient"),
])
def test_discount_weights_rejects(wrong, message):
    with pytest.raises(CheckFailed) as error:
        checks.check_discount_weights(wrong)
    assert message in str(error.value)


def actor_loss_wrong_sign(returns, discounts):
    return (ac.discount_weights(discounts) * returns).mean()


def actor_loss_no_weights(returns, discounts):
    return -returns.mean()


def actor_loss_weights_with_gradient(returns, discounts):
    return -(weights_not_detached(discounts) * returns).mean()


def test_actor_loss_accepts_reference(capsys):
    checks.check_actor_loss(ac.compute_actor_loss)
    assert "Exercise 5.2 passed" in capsys.readouterr().out


@pytest.mark.parametrize("wrong,message", [
    (actor_loss_wrong_sign, "sign is wrong"),
    (actor_loss_no_weights, "forgot the discount weights"),
    (actor_loss_weights_with_gradient, "detach the weights"),
])
def test_actor_loss_rejects(wrong, message):
    with pytest.raises(CheckFailed) as error:
        checks.check_actor_loss(wrong)
    assert message in str(error.value)


# ---------------------------------------------------------------- 5.3
def critic_loss_target_not_detached(values, lambda_returns, discounts):
    return (ac.discount_weights(discounts) * 0.5 * (values - lambda_returns).pow(2)).mean()


def critic_loss_without_half(values, lambda_returns, discounts):
    return (ac.discount_weights(discounts) * (values - lambda_returns.detach()).pow(2)).mean()


def test_critic_loss_accepts_reference(capsys):
    checks.check_critic_loss(ac.compute_critic_loss)
    assert "Exercise 5.3 passed" in capsys.readouterr().out


@pytest.mark.parametrize("wrong,message", [
    (critic_loss_target_not_detached, "detach the target"),
    (critic_loss_without_half, "dropped the 0.5"),
])
def test_critic_loss_rejects(wrong, message):
    with pytest.raises(CheckFailed) as error:
        checks.check_critic_loss(wrong)
    assert message in str(error.value)


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


def test_imagine_step_accepts_reference(capsys):
    rng = torch.get_rng_state()
    checks.check_imagine_step(imagine_step)
    assert "Exercise 5.4 passed" in capsys.readouterr().out
    assert torch.equal(rng, torch.get_rng_state()), "the check must not change the learner's random state"


@pytest.mark.parametrize("wrong,message", [
    (imagine_step_not_detached, "not detached"),
    (imagine_step_sample, "use rsample()"),
    (imagine_step_mean, "tanh(mean)"),
])
def test_imagine_step_rejects(wrong, message):
    with pytest.raises(CheckFailed) as error:
        checks.check_imagine_step(wrong)
    assert message in str(error.value)


def test_imagine_step_matches_rollout_imagination():
    """The lesson's claim: stepping imagine_step H times is RSSM.rollout_imagination."""
    from dreamer_lib.rssm import RSSM, stack_states

    torch.manual_seed(0)
    rssm = RSSM(2, 8, 4, 8, 8)
    actor = ac.Actor(rssm.feature_size, 2, units=16)
    start = rssm.get_initial_state(3)
    torch.manual_seed(1)
    expected_states, expected_actions = rssm.rollout_imagination(start, actor, 4)
    torch.manual_seed(1)
    state, states, actions = start, [], []
    for _ in range(4):
        action, state = imagine_step(rssm, actor, state)
        states.append(state)
        actions.append(action)
    assert all(torch.equal(a, b) for a, b in zip(stack_states(states), expected_states))
    assert torch.equal(torch.stack(actions), expected_actions)
