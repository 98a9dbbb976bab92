"""Checks for lesson 8 (beyond DreamerV1): DreamerV2's straight-through categorical sample and KL
balancing, DreamerV3's return scale, the slow critic of V2/V3.

As the other lessons' checks: where a result differs from the reference's, the check computes
what each usual mistake gives on the same inputs and names the one the learner's result equals;
where the values are right, it compares gradients, because each of these changes is about where
a gradient goes (or does not)."""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from dreamer_lib.actor_critic import percentile_ema
from dreamer_lib.course.checks import call, expect_close, expect_shape, fail, gradient_paths, passed, same, seeded
from dreamer_lib.course.checks.rssm import leaf_state
from dreamer_lib.discrete import UNIFORM_MIX, mixed_probs
from dreamer_lib.rssm import kl_divergence


# ---------------------------------------------------------------- 8.1 the straight-through sample
def _off_the_probability(counts: torch.Tensor, p: torch.Tensor, draws: int) -> torch.Tensor:
    """Where a count of draws lies too far from draws * p to be chance: each count is binomial,
    so more than 5 standard deviations off, with at least 3 of slack."""
    expected = p * draws
    return (counts - expected).abs() > 5 * (expected * (1 - p)).sqrt() + 3


def check_straight_through_sample(straight_through_sample) -> None:
    """straight_through_sample(logits (..., classes)) -> (sample, probs): probs the softmax with a
    1% uniform mix; sample one-hot, drawn from probs, with the gradient of probs."""
    ex = "8.1"
    draws, classes = 4000, 5
    row = torch.tensor([2.0, 0.5, -1.0, -9.0, 0.0])  # class 3: 0.0001% without the mix, 0.2% with it
    logits = row.repeat(draws, 1).requires_grad_(True)
    torch.manual_seed(0)
    out = call(ex, straight_through_sample, logits, what="calling your straight_through_sample(logits)")
    if not (isinstance(out, tuple) and len(out) == 2):
        fail(ex, f"return a pair (sample, probs); got {type(out).__name__}.")
    sample, probs = out
    expect_shape(ex, "sample", sample, (draws, classes))
    expect_shape(ex, "probs", probs, (draws, classes))
    want = mixed_probs(logits)
    if not same(probs, want):
        softmax = logits.softmax(-1)
        mistakes = {
            "probs is the plain softmax: mix in 1% of the uniform distribution, 0.99 * softmax + 0.01 / classes, "
            "so that no class has probability 0 (its log, in the KL, would be -inf)": softmax,
            "probs is softmax + 0.01 / classes, which sums to 1.01, not 1: weight the softmax by 0.99":
                softmax + UNIFORM_MIX / classes,
            "the mix is applied to the logits, not the probabilities: softmax first, then 0.99 * softmax + "
            "0.01 / classes": ((1 - UNIFORM_MIX) * logits + UNIFORM_MIX / classes).softmax(-1),
            "the softmax runs over the wrong dimension: the classes are the LAST dimension (softmax(-1))":
                (1 - UNIFORM_MIX) * logits.softmax(0) + UNIFORM_MIX / classes,
        }
        named = next((m for m, value in mistakes.items() if same(probs, value)), None)
        if named:
            fail(ex, named + ".")
        expect_close(ex, "probs", probs, want)
    if not probs.requires_grad:
        fail(ex, "probs carries no gradient (detached, or computed under torch.no_grad()): the KL is computed from "
                 "probs, and it is what trains the prior's and the posterior's logits. Detach only inside the "
                 "straight-through term, probs - probs.detach().")
    values = sample.detach()
    if same(values, probs):
        fail(ex, "sample equals probs: you returned the probabilities, not a sample. Draw one class per row "
                 "(torch.multinomial(probs, 1) or torch.distributions.OneHotCategorical(probs=probs).sample()), "
                 "make it one-hot, then add the straight-through term.")
    one_hot = ((values - values.round()).abs() < 1e-5).all() and ((values.round() == 0) | (values.round() == 1)).all()
    if not (one_hot and torch.allclose(values.sum(-1), torch.ones(draws), atol=1e-5)):
        fail(ex, f"sample is not one-hot (row 0: {[round(x, 3) for x in values[0].tolist()]}): each row must hold "
                 "a single 1 at the drawn class and 0 elsewhere, in value. The straight-through term "
                 "probs - probs.detach() is 0 in value; it only changes the gradient.")
    counts = values.round().sum(0)
    expected = want.detach()[0] * draws
    if counts.max() == draws:
        fail(ex, f"every row drew class {int(counts.argmax())}: that is the argmax (the mode), not a sample. A "
                 "sample draws each class as often as its probability (torch.multinomial or OneHotCategorical).")
    off = _off_the_probability(counts, want.detach()[0], draws).nonzero().flatten().tolist()
    if off:
        k = off[0]
        fail(ex, f"class {k} was drawn {int(counts[k])} times in {draws} draws; its probability says about "
                 f"{float(expected[k]):.0f}. Draw from probs (the mixed probabilities), not from the softmax alone "
                 "or from the logits.")
    # The mix shows where the softmax is near one-hot: with class 0 at logit 12, the other four classes
    # hold 0.002% of the softmax's draws and 0.8% of the mixed distribution's.
    peaked = torch.tensor([12.0, 0.0, 0.0, 0.0, 0.0]).repeat(5 * draws, 1)
    rest = float(call(ex, straight_through_sample, peaked, what="calling your straight_through_sample(logits) on "
                      "logits where one class dominates")[0].detach()[:, 1:].round().sum())
    p_rest = mixed_probs(peaked[:1])[0, 1:].sum()
    if _off_the_probability(torch.tensor(rest), p_rest, len(peaked)):
        fail(ex, f"with one class at 99.99% of the softmax, the others were drawn {rest:.0f} times in {len(peaked)} "
                 f"draws; the mixed probabilities say about {float(p_rest) * len(peaked):.0f} (0.2% each). Draw the "
                 "sample from probs, the mixed probabilities, not from the softmax before the mix: the mix is what "
                 "keeps every class reachable.")

    weights = torch.randn(draws, classes, generator=seeded(3))
    (want_grad,) = torch.autograd.grad((want * weights).sum(), logits, retain_graph=True)
    your_grad = None
    if sample.requires_grad:
        (your_grad,) = call(ex, torch.autograd.grad, (sample * weights).sum(), logits, allow_unused=True,
                            what="backpropagating from your sample")
    if your_grad is None or not your_grad.abs().max() > 0:
        fail(ex, "no gradient flows from sample back to the logits: a one-hot draw has none. Add the "
                 "straight-through term, sample + probs - probs.detach(): the forward pass keeps the sample, "
                 "the backward pass takes the gradient of the probabilities.")
    if not torch.allclose(your_grad, want_grad, atol=1e-6, rtol=1e-4):
        grads = {}
        for name, surrogate in (("softmax", logits.softmax(-1)), ("logits", logits), ("minus", -want)):
            (grads[name],) = torch.autograd.grad((surrogate * weights).sum(), logits, retain_graph=True)
        if torch.allclose(your_grad, grads["softmax"], atol=1e-6, rtol=1e-4):
            fail(ex, "the straight-through term uses the softmax before the mix: its gradient must be that of "
                     "probs, the mixed probabilities you sample from (sample + probs - probs.detach()).")
        if torch.allclose(your_grad, grads["logits"], atol=1e-6, rtol=1e-4):
            fail(ex, "the straight-through term passes the gradient to the logits as is (sample + logits - "
                     "logits.detach()): it must go through the probabilities, sample + probs - probs.detach().")
        if torch.allclose(your_grad, grads["minus"], atol=1e-6, rtol=1e-4):
            fail(ex, "the straight-through term has its sign reversed (probs.detach() - probs): the gradient "
                     "then points the wrong way. Write sample + probs - probs.detach().")
        error = (your_grad - want_grad).abs().max()
        fail(ex, f"the gradient of sample w.r.t. the logits differs from the probabilities' (by up to {error:.3g}): "
                 "the straight-through term is sample + probs - probs.detach(), with probs the mixed probabilities.")
    passed(ex, f"one-hot samples, each class drawn as often as its probability ({draws} draws), the 1% uniform "
               "mix, and the probabilities' gradient straight through the sample.")


# ---------------------------------------------------------------- 8.2 KL balancing
def check_balanced_kl(balanced_kl) -> None:
    """balanced_kl(posterior, prior, alpha) -> alpha * mean KL(sg(posterior) || prior)
    + (1 - alpha) * mean KL(posterior || sg(prior)): the paper's KL in value, its gradient split."""
    ex = "8.2"
    alpha = 0.8
    g = seeded(1)
    q, p = leaf_state(g, 6, 5, stoch=4), leaf_state(g, 6, 5, stoch=4)
    out = call(ex, balanced_kl, q, p, alpha, what="calling your balanced_kl(posterior, prior, 0.8)")
    if isinstance(out, torch.Tensor) and tuple(out.shape) == (6, 5):
        fail(ex, "the result has shape (6, 5), one KL per state: the KL term is their mean over batch and time.")
    expect_shape(ex, "balanced_kl(posterior, prior, alpha)", out, ())
    kl = kl_divergence(q, p).mean()
    if not same(out, kl):
        mistakes = {
            "KL(prior || posterior), the other direction: both terms are KL(posterior || prior), the posterior "
            "first, as in lesson 3": kl_divergence(p, q).mean(),
            "alpha times the KL only: the second term, (1 - alpha) x KL(posterior || sg(prior)), is missing "
            "(the two terms add up to the paper's KL in value)": alpha * kl,
            "(1 - alpha) times the KL only: the first term, alpha x KL(sg(posterior) || prior), is missing":
                (1 - alpha) * kl,
            "the two terms' mean, not their weighted sum: alpha and 1 - alpha already add up to 1": kl / 2,
            "a sum over batch and time: take the mean, as the paper's KL term": kl_divergence(q, p).sum(),
        }
        named = next((m for m, value in mistakes.items() if same(out, value)), None)
        if named:
            fail(ex, named + ".")
        expect_close(ex, "balanced_kl(posterior, prior, alpha)", out, kl,
                     hint="In value, alpha x KL + (1 - alpha) x KL is the paper's mean KL(posterior || prior).")
    if not out.requires_grad:
        fail(ex, "the result carries no gradient: the stop-gradients belong on one side of each term, not on "
                 "the whole result (no torch.no_grad(), no .detach() of both).")
    reference = alpha * kl_divergence(q.detach(), p).mean() + (1 - alpha) * kl_divergence(q, p.detach()).mean()
    leaves = {"the prior's mean": p.mean, "the prior's std": p.std,
              "the posterior's mean": q.mean, "the posterior's std": q.std}
    yours = torch.autograd.grad(out, list(leaves.values()), allow_unused=True, retain_graph=True)
    plain = dict(zip(leaves, zip(yours, torch.autograd.grad(kl, list(leaves.values()), retain_graph=True))))

    def share(name: str) -> float | None:
        """Your gradient on `name` as a multiple of the plain KL's, if it is one."""
        mine, full = plain[name]
        if mine is None:
            return 0.0
        factor = float((mine * full).sum() / (full * full).sum())
        return factor if torch.allclose(mine, factor * full, atol=1e-6, rtol=1e-3) else None

    prior, posterior = share("the prior's mean"), share("the posterior's mean")
    if prior is not None and posterior is not None:
        if abs(prior - (1 - alpha)) < 1e-3 and abs(posterior - alpha) < 1e-3:
            fail(ex, f"balanced on the wrong side: the prior gets {1 - alpha:.1f} of the KL's gradient and the "
                     f"posterior {alpha:.1f}. alpha = 0.8 belongs to the term that trains the prior, "
                     "KL(sg(posterior) || prior), so that the prior learns to predict the posterior faster than "
                     "the posterior is pulled towards the prior.")
        if abs(prior - 1) < 1e-3 and abs(posterior - 1) < 1e-3:
            fail(ex, "no stop-gradients: each side gets the whole KL's gradient, the same as the paper's KL "
                     "(alpha changes nothing). Detach the posterior in the alpha term and the prior in the "
                     "(1 - alpha) term.")
        if abs(prior) < 1e-9 and abs(posterior - 1) < 1e-3:
            fail(ex, "the prior gets no gradient and the posterior all of it: the prior is detached in both terms. "
                     "Only the (1 - alpha) term reads sg(prior).")
        if abs(posterior) < 1e-9 and abs(prior - 1) < 1e-3:
            fail(ex, "the posterior gets no gradient from the KL and the prior all of it: the posterior is "
                     "detached in both terms. Only the alpha term reads sg(posterior).")
    gradient_paths(ex, {"balanced_kl": (out, reference)}, leaves,
                   what=" (alpha = 0.8: the prior should get 0.8 of the KL's gradient, the posterior 0.2)")
    passed(ex, f"the paper's KL in value ({float(out.detach()):.4f} nats); the prior gets {alpha} of its gradient, the "
               f"posterior {1 - alpha:.1f}.")


# ---------------------------------------------------------------- 8.3 the return scale
QUANTILE_HINTS = ((r"q values must be in the range \[0, 1\]|Percentiles must be in the range",
                   "torch.quantile takes fractions in [0, 1]: the 5th and 95th percentiles are q = 0.05 and 0.95."),)


def _reference_scale(returns: torch.Tensor, low_high: torch.Tensor, decay: float):
    new = percentile_ema(returns, low_high, decay)
    return torch.clamp(new[1] - new[0], min=1.0), new


def check_return_scale(return_scale) -> None:
    """return_scale(returns (H, N), low_high (2,), decay) -> (scale, new low_high): low_high the
    EMA of the returns' 5th and 95th percentiles, scale = max(1, high - low), a constant."""
    ex = "8.3"
    decay = 0.99
    g = seeded(2)
    # Large returns with a few outliers: their std and their 5-95 range differ.
    large = 40 * torch.randn(14, 64, generator=g) - 120
    large[0, :4] = torch.tensor([-900.0, 600.0, -700.0, 800.0])
    small = 0.05 * torch.randn(14, 64, generator=g)
    for case, returns, low_high in (("returns in the hundreds", large, torch.tensor([-300.0, -20.0])),
                                    ("returns all within 0.2 of each other", small, torch.tensor([-0.1, 0.1]))):
        returns = returns.clone().requires_grad_(True)
        start = low_high.clone()
        out = call(ex, return_scale, returns, low_high.clone(), decay, hints=QUANTILE_HINTS,
                   what=f"calling your return_scale(returns, low_high, {decay}) on {case}")
        if not (isinstance(out, tuple) and len(out) == 2):
            fail(ex, f"return a pair (scale, new low_high); got {type(out).__name__}.")
        scale, new = out
        want_scale, want_new = _reference_scale(returns, start, decay)
        scale_t = torch.as_tensor(scale, dtype=torch.float32)
        expect_shape(ex, "new low_high", new, (2,))
        if not same(new, want_new):
            flat = returns.detach().flatten()
            percentiles = torch.quantile(flat, torch.tensor([0.05, 0.95]))
            mistakes = {
                "new low_high is this batch's percentiles alone: keep an EMA, decay * low_high + (1 - decay) * "
                "percentiles, so that one batch of unusual returns does not swing the scale": percentiles,
                "the EMA's weights are swapped: decay (0.99) weighs the OLD statistics, (1 - decay) the new "
                "percentiles": (1 - decay) * start + decay * percentiles,
                "the EMA tracks the minimum and maximum, not the 5th and 95th percentiles: a single outlier "
                "would then set the scale": decay * start + (1 - decay) * torch.stack([flat.min(), flat.max()]),
                "the percentiles are taken per column (dim=0) and then averaged: take the 5th and 95th percentiles "
                "of all the returns together (flatten them first)": decay * start + (1 - decay) * torch.quantile(
                    returns.detach(), torch.tensor([0.05, 0.95]), dim=0).mean(-1),
            }
            for low, high in ((0.01, 0.99), (0.1, 0.9), (0.25, 0.75)):
                mistakes[f"the EMA tracks the {low:.0%} and {high:.0%} quantiles: DreamerV3's scale is the range "
                         "between the 5th and 95th percentiles, q = 0.05 and 0.95"] = \
                    decay * start + (1 - decay) * torch.quantile(flat, torch.tensor([low, high]))
            named = next((m for m, value in mistakes.items() if same(new, value)), None)
            if named:
                fail(ex, f"on {case}: {named}.")
            expect_close(ex, f"new low_high on {case}", new, want_new,
                         hint="low_high = decay * low_high + (1 - decay) * [5th, 95th percentile of the returns].")
        if not same(scale_t, want_scale):
            flat = returns.detach().flatten()
            mistakes = {
                "the scale has no floor: max(1, high - low). Returns that already vary by less than 1 must not be "
                "blown up (that would amplify noise on a task whose rewards are all small)": want_new[1] - want_new[0],
                "the scale is the returns' standard deviation: DreamerV3 uses the 5th-95th percentile range, which "
                "a few outliers do not inflate": torch.clamp(flat.std(), min=1.0),
                "the scale is the standard deviation without the floor of 1": flat.std(),
                "the scale is this batch's 5th-95th percentile range: use the EMA you just updated (the new "
                "low_high)": torch.clamp(torch.quantile(flat, 0.95) - torch.quantile(flat, 0.05), min=1.0),
                "the scale uses the OLD low_high: update the EMA first, then take its range":
                    torch.clamp(start[1] - start[0], min=1.0),
            }
            named = next((m for m, value in mistakes.items() if same(scale_t, value)), None)
            if named:
                fail(ex, f"on {case}: {named}.")
            expect_close(ex, f"scale on {case}", scale_t, want_scale, hint="scale = max(1, high - low) of the new "
                                                                           "low_high.")
        if isinstance(scale, torch.Tensor) and scale.requires_grad:
            fail(ex, "the scale carries a gradient back to the returns: it is a statistic, a constant for the actor. "
                     "Compute the percentiles from returns.detach(); otherwise the actor would learn to shrink "
                     "the spread of its returns instead of raising them.")
    passed(ex, "the EMA of the 5th and 95th percentiles, a scale of max(1, high - low) that outliers do not inflate "
               "and small returns do not blow up, no gradient through the scale.")


# ---------------------------------------------------------------- 8.4 the slow critic
def check_update_slow_critic(update_slow_critic) -> None:
    """update_slow_critic(slow, critic, decay) changes slow in place: slow <- decay * slow +
    (1 - decay) * critic, parameter by parameter; the critic stays as it is."""
    ex = "8.4"
    decay = 0.98
    torch.manual_seed(4)
    critic = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.ELU(), torch.nn.Linear(5, 1))
    slow = copy.deepcopy(critic).requires_grad_(False)
    with torch.no_grad():
        for param in slow.parameters():
            param.add_(torch.randn(param.shape, generator=seeded(5)))
    slow_before = [p.detach().clone() for p in slow.parameters()]
    critic_before = [p.detach().clone() for p in critic.parameters()]
    result = call(ex, update_slow_critic, slow, critic, decay,
                  what=f"calling your update_slow_critic(slow, critic, {decay})")
    if any(not torch.equal(p, b) for p, b in zip(critic.parameters(), critic_before)):
        fail(ex, "the critic's weights changed: only the slow copy moves (towards the critic).")
    after = [p.detach() for p in slow.parameters()]
    if all(torch.equal(p, b) for p, b in zip(after, slow_before)):
        returned = (": you returned a new module, but the agent keeps the one it has, so change its weights in "
                    "place, e.g. slow_param.lerp_(param, 1 - decay) under torch.no_grad()") if result is not None else ""
        fail(ex, "the slow critic's weights did not change" + (returned or ": assigning a new tensor to a loop "
                 "variable (s = decay * s + ...) leaves the module as it was; change each parameter in place, e.g. "
                 "slow_param.lerp_(param, 1 - decay) under torch.no_grad()") + ".")
    want = [decay * s + (1 - decay) * c for s, c in zip(slow_before, critic_before)]
    if all(torch.allclose(p, w, atol=1e-6) for p, w in zip(after, want)):
        if any(p.requires_grad or p.grad_fn is not None for p in slow.parameters()):
            fail(ex, "the slow critic's weights now require gradients: update them under torch.no_grad(); the slow "
                     "critic is never trained by a loss.")
        passed(ex, f"each slow weight moved {1 - decay:.0%} of the way to the critic's; the critic unchanged.")
        return
    mistakes = {
        f"the weights are swapped: each update moves the slow copy {decay:.0%} of the way to the critic, so it is "
        f"almost a copy and no slower. decay weighs the slow copy's own weights: decay * slow + (1 - decay) * "
        f"critic": [(1 - decay) * s + decay * c for s, c in zip(slow_before, critic_before)],
        "the slow copy became the critic (a hard copy): it should move only 1 - decay of the way each update":
            critic_before,
    }
    named = next((m for m, value in mistakes.items() if all(torch.allclose(p, v, atol=1e-6)
                                                            for p, v in zip(after, value))), None)
    if named:
        fail(ex, named + ".")
    index = next(i for i, (p, w) in enumerate(zip(after, want)) if not torch.allclose(p, w, atol=1e-6))
    expect_close(ex, f"slow critic parameter {index}", after[index], want[index],
                 hint="slow <- decay * slow + (1 - decay) * critic, for every parameter.")
