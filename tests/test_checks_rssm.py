"""The lesson-3 checks accept the library's RSSM code and reject the usual mistakes."""
import pytest
import torch
import torch.nn.functional as F

from dreamer_lib import rssm
from dreamer_lib.course.checks import CheckFailed
from dreamer_lib.course.checks.rssm import check_kl_divergence, check_kl_loss, check_rssm_step
from dreamer_lib.rssm import RSSM, RSSMState


def test_reference_passes(capsys):
    check_kl_divergence(rssm.kl_divergence)
    check_kl_loss(rssm.kl_loss)
    check_rssm_step(RSSM)
    assert capsys.readouterr().out.count("passed") == 3


# ---------------------------------------------------------------- 3.1 kl_divergence
def kl_wrong_direction(q, p):
    return rssm.kl_divergence(p, q)


def kl_not_summed(q, p):
    var_ratio = (q.std / p.std).pow(2)
    return 0.5 * (var_ratio + ((q.mean - p.mean) / p.std).pow(2) - 1 - var_ratio.log())


def kl_averaged(q, p):
    return kl_not_summed(q, p).mean(-1)


def kl_std_as_variance(q, p):
    var_ratio = q.std / p.std  # std used where the variance belongs
    return 0.5 * (var_ratio + (q.mean - p.mean).pow(2) / p.std - 1 - var_ratio.log()).sum(-1)


def kl_unsquared_ratio(q, p):
    ratio = q.std / p.std
    return 0.5 * (ratio + ((q.mean - p.mean) / p.std).pow(2) - 1 - ratio.log()).sum(-1)


@pytest.mark.parametrize("wrong,message", [
    (kl_wrong_direction, "other direction"),
    (kl_not_summed, "SUM of the per-dimension KLs"),
    (kl_averaged, "averaged instead of summed"),
    (kl_std_as_variance, "std is treated as the variance"),
    (kl_unsquared_ratio, "std ratio is not squared"),
])
def test_kl_divergence_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        check_kl_divergence(wrong)


# ---------------------------------------------------------------- 3.2 kl_loss
def kl_loss_per_element(posterior, prior, free_nats=3.0):
    kl = rssm.kl_divergence(posterior, prior)
    return torch.clamp(kl, min=free_nats).mean(), kl.mean()


def kl_loss_no_clamp(posterior, prior, free_nats=3.0):
    kl = rssm.kl_divergence(posterior, prior).mean()
    return kl, kl


def kl_loss_logs_clamped(posterior, prior, free_nats=3.0):
    loss = torch.clamp(rssm.kl_divergence(posterior, prior).mean(), min=free_nats)
    return loss, loss


def kl_loss_summed(posterior, prior, free_nats=3.0):
    kl = rssm.kl_divergence(posterior, prior).sum()
    return torch.clamp(kl, min=free_nats), kl


@pytest.mark.parametrize("wrong,message", [
    (kl_loss_per_element, "clamped each element"),
    (kl_loss_no_clamp, "clamp is missing"),
    (kl_loss_logs_clamped, "the clamped loss"),
    (kl_loss_summed, "SUM of the KLs"),
])
def test_kl_loss_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        check_kl_loss(wrong)


# ---------------------------------------------------------------- 3.3 RSSM step
class PosteriorWithoutH(RSSM):
    def posterior(self, prior, embed):
        x = F.elu(self.posterior_hidden(torch.cat([torch.zeros_like(prior.deter), embed], -1)))
        return self._gaussian(self.posterior_stats(x), prior.deter)


class NoMinStd(RSSM):
    def _gaussian(self, stats, deter):
        mean, std = stats.float().chunk(2, -1)
        std = F.softplus(std)
        return RSSMState(mean, std, mean + std * torch.randn_like(std), deter)


class SampleWithoutGradient(RSSM):
    def _gaussian(self, stats, deter):
        mean, std = stats.float().chunk(2, -1)
        std = F.softplus(std) + self.min_std
        return RSSMState(mean, std, torch.distributions.Normal(mean, std).sample(), deter)


class DetachedStd(RSSM):
    def _gaussian(self, stats, deter):
        mean, std = stats.float().chunk(2, -1)
        std = F.softplus(std) + self.min_std
        return RSSMState(mean, std, mean + std.detach() * torch.randn_like(std), deter)


class PriorSkipsGRU(RSSM):
    def prior(self, prev_state, prev_action):
        x = F.elu(self.input_layer(torch.cat([prev_state.stoch, prev_action], -1)))
        deter = prev_state.deter  # forgot the recurrent update
        return self._gaussian(self.prior_stats(F.elu(self.prior_hidden(deter))), deter)


@pytest.mark.parametrize("wrong,message", [
    (PosteriorWithoutH, "does not change when h_t changes"),
    (NoMinStd, "without the minimum"),
    (SampleWithoutGradient, "carries no gradient"),
    (DetachedStd, "no gradient reaches prior"),
    (PriorSkipsGRU, "deter is h_{t-1} unchanged: the GRU step is missing"),
])
def test_rssm_step_rejects(wrong, message):
    with pytest.raises(CheckFailed, match=message):
        check_rssm_step(wrong)
