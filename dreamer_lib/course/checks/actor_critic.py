"""Checks for lesson 5 (behaviour learning in imagination): lambda-returns, discount weights,
actor and critic losses, and one imagination step.

Each check runs the learner's function and the reference on the same seeded inputs. When the
results differ, it also runs the classic mistakes and names the one the learner's result
matches, so the message says what to fix, not only that something is off.
"""
from __future__ import annotations

import torch

from dreamer_lib import actor_critic as reference
from dreamer_lib import evaluate
from dreamer_lib.course.checks import call, expect_close, expect_shape, fail, gradient_paths, passed, seeded

H, N = 6, 3  # imagined steps, start states


def _inputs(seed: int = 0, requires_grad: bool = False):
    g = seeded(seed)
    rewards = torch.randn(H, N, generator=g)
    values = 3 * torch.randn(H, N, generator=g)
    discounts = 0.9 + 0.1 * torch.rand(H, N, generator=g)  # not constant: catches misplaced discounts
    bootstrap = 3 * torch.randn(N, generator=g)
    if requires_grad:
        for x in (rewards, values, discounts, bootstrap):
            x.requires_grad_(True)
    return rewards, values, discounts, bootstrap


def _matches(actual: torch.Tensor, candidate: torch.Tensor) -> bool:
    return actual.shape == candidate.shape and torch.allclose(actual.detach().float(), candidate.detach().float(),
                                                              atol=1e-5, rtol=1e-4)


# ------------------------------------------------------------------------------ 5.1 lambda-returns
def backwards(inputs, last, decay):
    """out_t = inputs_t + decay_t * out_{t+1}, out_H = last: the recursion the wrong variants share.

    It is the library's lambda-return with lambda = 1 (then R_t = r_t + d_t R_{t+1}, R_H =
    bootstrap, and the values drop out), so the recursion is written once, in actor_critic.py."""
    return reference.compute_lambda_returns(inputs, torch.zeros_like(inputs), decay, last, lambda_=1.0)


def _lambda_mistakes(rewards, values, discounts, bootstrap, lambda_):
    """Outputs of the classic wrong lambda-returns, with the explanation of each."""
    next_values = torch.cat([values[1:], bootstrap[None]], 0)
    right = rewards + discounts * (1 - lambda_) * next_values
    yield (backwards(rewards + discounts * (1 - lambda_) * values, bootstrap, discounts * lambda_),
           "You bootstrap each step with values[t], the value of the state the reward was received in. "
           "Equation 6 bootstraps with the NEXT state's value: v_{t+1} = values[t+1], and the last step with "
           "`bootstrap` (next_values = torch.cat([values[1:], bootstrap[None]])).")
    yield (backwards(rewards + discounts * next_values, bootstrap, discounts * lambda_),
           "The bootstrap term lacks its (1 - lambda) factor: R_t = r_t + d_t ((1 - lambda) v_{t+1} + lambda R_{t+1}). "
           "Without it the value is counted once in every one of the n-step returns that lambda mixes.")
    yield (backwards(right, torch.zeros_like(bootstrap), discounts * lambda_),
           "The recursion starts from 0 instead of the bootstrap value: R_H = v_H = bootstrap, "
           "otherwise everything after the horizon counts as zero reward.")
    bad_next = torch.cat([values[1:], values[-1:]], 0)
    values_last = ("You bootstrap with values[-1] instead of the `bootstrap` argument{where}. values[-1] is v_(H-1), "
                   "the value of the last imagined state, in which the last reward is received; the value of the state "
                   "AFTER the last step, v_H, is the separate argument `bootstrap`: next_values = "
                   "torch.cat([values[1:], bootstrap[None]]), and the recursion starts from R_H = bootstrap.")
    yield (backwards(rewards + discounts * (1 - lambda_) * bad_next, values[-1], discounts * lambda_),
           values_last.format(where=" (both in next_values and as the start of the recursion)"))
    yield (backwards(right, values[-1], discounts * lambda_),
           values_last.format(where=" as the start of the recursion (R_H)"))
    yield (backwards(rewards + discounts * (1 - lambda_) * bad_next, bootstrap, discounts * lambda_),
           values_last.format(where=" as the last entry of next_values"))
    yield (backwards(right, bootstrap, discounts * lambda_).flip(0),
           "Your returns are in reverse time order: collect them backwards, then flip (returns[::-1]) "
           "so that returns[t] belongs to step t.")
    yield (backwards(rewards + (1 - lambda_) * next_values, bootstrap, torch.full_like(discounts, lambda_)),
           "The discounts are missing: both the bootstrap term and the recursion are multiplied by d_t.")
    yield (backwards(right, bootstrap, discounts),
           "The recursion R_{t+1} is multiplied by d_t only; it needs d_t * lambda.")
    # The discount d_t weighs everything after step t: both terms inside the bracket, not r_t.
    bracket = "R_t = r_t + d_t ((1 - lambda) v_{t+1} + lambda R_{t+1}): d_t multiplies both terms in the bracket"
    yield (backwards(right, bootstrap, torch.full_like(discounts, lambda_)),
           f"The recursion's lambda R_{{t+1}} lacks the discount d_t (only the bootstrap term has it). {bracket}.")
    yield (backwards(rewards + (1 - lambda_) * next_values, bootstrap, discounts * lambda_),
           f"The bootstrap term (1 - lambda) v_{{t+1}} lacks the discount d_t (only the recursion has it). {bracket}.")
    yield (backwards(discounts * (rewards + (1 - lambda_) * next_values), bootstrap, discounts * lambda_),
           f"You discount the reward r_t too (d_t outside the bracket): it is received at step t, before the "
           f"discount d_t, which weighs only what comes after. {bracket}, not r_t.")


def check_lambda_returns(compute_lambda_returns) -> None:
    ex = "5.1"
    for lambda_ in (0.95, 0.0, 1.0):
        rewards, values, discounts, bootstrap = _inputs(seed=1, requires_grad=True)
        expected = reference.compute_lambda_returns(rewards, values, discounts, bootstrap, lambda_)
        actual = call(ex, compute_lambda_returns, rewards, values, discounts, bootstrap, lambda_,
                      what=f"calling your compute_lambda_returns(rewards, values, discounts, bootstrap, {lambda_}) "
                           f"on rewards/values/discounts of shape ({H}, {N}) and bootstrap ({N},)",
                      hints=((r"size of tensor a|must match|Sizes of tensors|number of dimensions",
                              "bootstrap has shape (N,), the "
                              "values (H, N): give it a time dimension to concatenate, bootstrap[None]."),))
        expect_shape(ex, f"compute_lambda_returns(...) with lambda={lambda_}", actual, (H, N))
        if not _matches(actual, expected):
            for candidate, why in _lambda_mistakes(rewards.detach(), values.detach(), discounts.detach(),
                                                   bootstrap.detach(), lambda_):
                if _matches(actual, candidate):
                    fail(ex, f"(lambda = {lambda_}) {why}")
            hint = {0.0: "With lambda = 0 the return is the one-step target r_t + d_t v_{t+1}.",
                    1.0: "With lambda = 1 it is the discounted sum of the rewards plus the discounted bootstrap."}
            expect_close(ex, f"returns with lambda={lambda_}", actual, expected, hint=hint.get(lambda_, ""))
        if not actual.requires_grad:
            fail(ex, "The returns carry no gradient. The actor learns by backpropagating the returns into the "
                     "imagined rewards and values, so do not detach (or use .item()/numpy) inside this function.")
        learns = ("The actor learns by backpropagating the returns into the imagined {what}, so keep the whole "
                  "recursion in torch, undetached (no .detach(), .item(), numpy or torch.no_grad()).")
        gradient_paths(ex, {"the returns": (actual, expected)},
                       {"rewards": rewards, "values": values, "discounts": discounts, "bootstrap": bootstrap},
                       what=f" (lambda = {lambda_})", stops={
            ("the returns", "rewards"): "No gradient flows from the returns to the rewards. "
                                        + learns.format(what="rewards"),
            ("the returns", "values"): "No gradient flows from the returns to the values. "
                                       + learns.format(what="values (the critic's bootstrap at each step)"),
            ("the returns", "bootstrap"): "No gradient flows from the returns to the bootstrap value. "
                                          + learns.format(what="values, the last one included"),
            ("the returns", "discounts"): "No gradient flows from the returns to the discounts. "
                                          + learns.format(what="discounts (with a continue head, the actor learns "
                                                               "to avoid the ends of episodes through them)")},
                       partial={("the returns", "rewards"): "Part of the gradient from the returns to the rewards is "
                                "missing: is R_{t+1}, the return you carry backwards, detached in your recursion? The "
                                "return at step t depends on every later reward through R_{t+1}, and the actor "
                                "learns from that whole path."})
    passed(ex, "lambda-returns match equation 6 for lambda = 0.95, 0 and 1, and keep their gradient.")


# ------------------------------------------------------------------------------ 5.2 weights and actor loss
def check_discount_weights(discount_weights) -> None:
    ex = "5.2"
    _, _, discounts, _ = _inputs(seed=2, requires_grad=True)
    expected = reference.discount_weights(discounts)
    actual = call(ex, discount_weights, discounts, what=f"calling your discount_weights(discounts of shape ({H}, {N}))")
    expect_shape(ex, "discount_weights(discounts)", actual, (H, N))
    d = discounts.detach()
    if not _matches(actual, expected):
        if _matches(actual, torch.cumprod(d, 0)):
            fail(ex, "Your weights start at d_0 instead of 1. Step 0 is the real start state: it is reached for "
                     "sure, so its weight is 1; step t is weighted by d_0 ... d_{t-1} (shift by one, then cumprod).")
        if _matches(actual, d) or _matches(actual, torch.cat([torch.ones_like(d[:1]), d[:-1]])):
            fail(ex, "Your weights are not cumulative: the probability of reaching step t is the PRODUCT of the "
                     "discounts before it (torch.cumprod along time), not the discount of one step.")
        steps = torch.arange(H, dtype=d.dtype)[:, None]
        if _matches(actual, d[:1] ** steps) or _matches(actual, d[:1] ** (steps + 1)):
            fail(ex, "Your weights are powers of the first discount, d_0^t (gamma^t): that holds only when every "
                     "step has the same discount. Each imagined step has its own d_k (a learned continue head "
                     "predicts it), so the weight of step t is the product prod_{k<t} d_k: shift by one, then "
                     "torch.cumprod along time.")
        if _matches(actual, torch.ones_like(d)):
            fail(ex, "Your weights are all ones: they must fall with the discounts, prod_{k<t} d_k.")
        expect_close(ex, "discount_weights(discounts)", actual, expected)
    if actual.requires_grad:
        fail(ex, "The weights carry a gradient. As the official code, detach them: the losses should not "
                 "learn to shrink the weights (with a learned continue head they would).")
    passed(ex, "discount weights start at 1, are cumulative products, and are detached.")


def check_actor_loss(compute_actor_loss) -> None:
    ex = "5.2"
    _, _, discounts, _ = _inputs(seed=3, requires_grad=True)
    returns = (3 * torch.randn(H, N, generator=seeded(4))).requires_grad_(True)
    expected = reference.compute_actor_loss(returns, discounts)
    actual = call(ex, compute_actor_loss, returns, discounts,
                  what=f"calling your compute_actor_loss(lambda_returns, discounts), both of shape ({H}, {N})")
    expect_shape(ex, "compute_actor_loss(returns, discounts)", actual, ())
    weights, r = reference.discount_weights(discounts.detach()), returns.detach()
    if not _matches(actual, expected):
        if _matches(actual, -expected):
            fail(ex, "The sign is wrong: the actor MAXIMISES the return, so its loss is -mean(weights * returns). "
                     "With +mean, gradient descent would learn to collect as little reward as it can.")
        if _matches(actual, -r.mean()):
            fail(ex, "You forgot the discount weights: -mean(discount_weights(discounts) * returns).")
        if _matches(actual, -(weights * r).sum()):
            fail(ex, "Use the mean over steps and start states, not the sum (the learning rates assume a mean).")
        expect_close(ex, "actor loss", actual, expected)
    if not actual.requires_grad:
        fail(ex, "The loss has no gradient: the actor learns by backpropagating it into the returns.")
    grad_returns, grad_discounts = call(ex, torch.autograd.grad, actual, (returns, discounts), allow_unused=True,
                                        what="backpropagating through your actor loss")
    if grad_discounts is not None and grad_discounts.abs().max() > 0:
        fail(ex, "The gradient reaches the discounts through the weights: detach the weights "
                 "(discount_weights does, as the official code).")
    passed(ex, "actor loss = -mean(weights * lambda-returns), gradient into the returns only.")


# ------------------------------------------------------------------------------ 5.3 critic loss
def check_critic_loss(compute_critic_loss) -> None:
    ex = "5.3"
    _, _, discounts, _ = _inputs(seed=5)
    values = torch.randn(H, N, generator=seeded(6)).requires_grad_(True)
    returns = (3 * torch.randn(H, N, generator=seeded(7))).requires_grad_(True)  # as from the actor's graph
    expected = reference.compute_critic_loss(values, returns, discounts)
    actual = call(ex, compute_critic_loss, values, returns, discounts,
                  what=f"calling your compute_critic_loss(values, lambda_returns, discounts), all of shape ({H}, {N})")
    expect_shape(ex, "compute_critic_loss(values, returns, discounts)", actual, ())
    weights, v, r = reference.discount_weights(discounts), values.detach(), returns.detach()
    if not actual.requires_grad:
        fail(ex, "No gradient reaches the values: the critic could not learn (is the whole loss detached, or "
                 "computed from numbers?).")
    grad_values, grad_returns = call(ex, torch.autograd.grad, actual, (values, returns), allow_unused=True,
                                     what="backpropagating through your critic loss")
    if grad_values is None or grad_values.abs().max() == 0:
        fail(ex, "No gradient reaches the values: the critic could not learn.")
    # Each missing piece of mean(weights * 0.5 (v - sg(R))^2), by what it does to the value and the gradient.
    missing = {
        "weights": "You forgot the discount weights: mean(weights * 0.5 * (values - returns)^2) with weights = "
                   "discount_weights(discounts), the probability of reaching each step (as the actor loss).",
        "half": "You dropped the 0.5: the loss is the negative log-likelihood of a unit-variance Gaussian, "
                "0.5 (v - R)^2 (without its constant), as the official code.",
        "detach": "The gradient reaches the lambda-returns: detach the target (lambda_returns.detach()). Otherwise "
                  "the critic loss moves its own target and, through the returns, the actor and the world model.",
    }
    not_detached = grad_returns is not None and grad_returns.abs().max() > 0
    if not _matches(actual, expected):
        if _matches(actual, -expected):
            fail(ex, "The sign is wrong: minimise the squared error.")
        if _matches(actual, (weights * 0.5 * (v - r).pow(2)).sum()):
            fail(ex, "Use the mean over steps and start states, not the sum (the learning rate assumes a mean).")
        for weighted in (True, False):
            for half in (True, False):
                candidate = ((weights if weighted else 1.0) * (0.5 if half else 1.0) * (v - r).pow(2)).mean()
                if (weighted, half) != (True, True) and _matches(actual, candidate):
                    found = [key for key, absent in (("weights", not weighted), ("half", not half),
                                                     ("detach", not_detached)) if absent]
                    intro = ("Your loss is a plain MSE, mean((values - lambda_returns)^2) (F.mse_loss), "
                             f"which lacks {len(found)} things of Dreamer's critic loss, "
                             "mean(discount_weights(discounts) * 0.5 * (values - lambda_returns.detach())^2). "
                             if not (weighted or half) else "")
                    fail(ex, intro + " ".join(f"({i}) {missing[key]}" if intro else missing[key]
                                              for i, key in enumerate(found, 1)))
        absolute = {"mean(weights * 0.5 |v - R|)": (weights * 0.5 * (v - r).abs()).mean(),
                    "mean(weights * |v - R|)": (weights * (v - r).abs()).mean(),
                    "mean(|v - R|) (F.l1_loss)": (v - r).abs().mean(),
                    "a Huber loss (F.smooth_l1_loss)": torch.nn.functional.smooth_l1_loss(v, r),
                    "a weighted Huber loss": (weights * torch.nn.functional.smooth_l1_loss(v, r, reduction="none"))
                    .mean()}
        for form, candidate in absolute.items():
            if _matches(actual, candidate):
                fail(ex, f"Your loss is {form}, built on the absolute error. Dreamer's critic regresses the "
                         "returns with the squared error, the negative log-likelihood of a unit-variance Gaussian: "
                         "mean(discount_weights(discounts) * 0.5 * (values - lambda_returns.detach())^2).")
        expect_close(ex, "critic loss", actual, expected)
    if not_detached:
        fail(ex, missing["detach"])
    passed(ex, "critic loss = mean(weights * 0.5 (v - sg(R))^2), no gradient into the target.")


# ------------------------------------------------------------------------------ 5.4 imagination step
IMAGINE_HINTS = (
    (r"has no attribute 'sample'",
     "actor(...) returns a TanhNormal, which has no .sample(): .sample() gives no gradient: use .rsample(). The "
     "actor learns by backpropagating the return through the sampled action into its parameters."),
    (r"not RSSMState|RSSMState' object is not|has no attribute 'features'",
     "The actor takes a tensor of features: actor(state.features.detach()); rssm.prior takes the RSSMState."),
    (r"'Tensor' object has no attribute '(stoch|deter|mean|std)'",
     "rssm.prior(prev_state, prev_action) takes the state first, then the action."),
    (r"TanhNormal",
     "actor(features) returns a distribution (TanhNormal); pass rssm.prior a sampled action, dist.rsample()."),
)

def check_imagine_step(imagine_step) -> None:
    from dreamer_lib.rssm import RSSM, RSSMState

    ex = "5.4"
    with evaluate.seeded(8, torch.device("cpu")):
        rssm = RSSM(action_size=2, embed_size=8, stoch_size=4, deter_size=8, hidden_size=8)
        actor = reference.Actor(rssm.feature_size, 2, units=16)
        g = seeded(9)
        state = RSSMState(*(torch.randn(5, n, generator=g).requires_grad_(True) for n in (4, 4, 4, 8)))
        torch.manual_seed(10)
        out = call(ex, imagine_step, rssm, actor, state, what="calling your imagine_step(rssm, actor, state)",
                   hints=IMAGINE_HINTS)
        torch.manual_seed(10)
        ref_action = actor(state.features.detach()).rsample()
        ref_state = rssm.prior(state, ref_action)
        torch.manual_seed(10)
        mean_action = torch.tanh(actor(state.features).normal.mean)
    if not (isinstance(out, tuple) and len(out) == 2):
        fail(ex, f"imagine_step should return (action, next_state); got {type(out).__name__}.")
    action, next_state = out
    expect_shape(ex, "action", action, (5, 2))
    if not isinstance(next_state, RSSMState):
        fail(ex, f"next_state should be an RSSMState (from rssm.prior); got {type(next_state).__name__}.")
    if not _matches(action, ref_action):
        if _matches(action, mean_action):
            fail(ex, "Your action is tanh(mean), the policy without noise. Imagination samples from the policy "
                     "(dist.rsample()), so the actor's std is trained too and the rollouts explore.")
        if action.abs().max() > 1:
            fail(ex, "Your action leaves [-1, 1]: sample from the actor's distribution, which squashes with tanh.")
        expect_close(ex, "action", action, ref_action,
                     hint="Sample with actor(state.features.detach()).rsample(), before calling rssm.prior "
                          "(the order of random draws matters for this seeded comparison).")
    if not action.requires_grad:
        fail(ex, "The action has no gradient: use rsample() (reparameterised), not sample(). The actor learns "
                 "by backpropagating the return through the action into its parameters.")
    for name, a, b in zip(RSSMState._fields, next_state, ref_state):
        expect_close(ex, f"next_state.{name}", a, b, hint="The next state is rssm.prior(state, action).")
    grads = call(ex, torch.autograd.grad, action.sum(), (state.stoch, state.deter), allow_unused=True,
                 what="backpropagating from your action")
    if any(g is not None and g.abs().max() > 0 for g in grads):
        fail(ex, "The actor's input is not detached: give the actor state.features.detach(). The state still "
                 "carries its gradient through rssm.prior; detaching only the actor's input means the actor "
                 "is not trained to move the states it reads (as rollout_imagination and the official code).")
    if not next_state.deter.requires_grad or call(
            ex, torch.autograd.grad, next_state.deter.sum(), actor.net[0].weight, allow_unused=True, retain_graph=True,
            what="backpropagating from your next state")[0] is None:
        fail(ex, "No gradient flows from the next state to the actor: pass the sampled action to rssm.prior.")
    gradient_paths(ex, {f"next_state.{field}": (getattr(next_state, field), getattr(ref_state, field))
                        for field in ("deter", "mean", "std")},
                   {"the state's z (state.stoch)": state.stoch, "its h (state.deter)": state.deter},
                   what=" in one imagination step", stops={
        ("next_state.deter", ("the state's z (state.stoch)", "its h (state.deter)")):
            "the state you pass to rssm.prior is detached: no gradient flows from the next imagined state back to "
            "this one, so the return's gradient stops after one step of the trajectory, and each action is trained "
            "only for its effect on the very next state's reward and value. Detach only the actor's input, "
            "actor(state.features.detach()), and give rssm.prior the state itself (as rollout_imagination)."})
    passed(ex, "one imagination step samples a differentiable action from the detached features and steps "
               "the prior, exactly as RSSM.rollout_imagination.")
