"""The lesson-3 checks accept the library's RSSM code and reject the usual mistakes."""
import pytest
import torch
import torch.nn.functional as F

from dreamer_lib import rssm
from dreamer_lib.course.checks.rssm import check_kl_divergence, check_kl_loss, check_rssm_step
from dreamer_lib.rssm import RSSM, RSSMState


def test_reference_passes(capsys):
    check_kl_divergence(rssm.kl_divergence)
    check_kl_loss(rssm.kl_loss)
    check_rssm_step(RSSM)
    out = capsys.readouterr().out
    assert all(f"Exercise {exercise} passed" in out for exercise in ("3.1", "3.2", "3.3")), out


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


def kl_with_missing_attribute(q, p):
    return 0.5 * (q.var / p.var).sum(-1)  # RSSMState has std, not var


def kl_prior_detached(q, p):  # the right numbers; the prior would never learn
    return rssm.kl_divergence(q, p.detach())


def kl_posterior_std_detached(q, p):
    return rssm.kl_divergence(q._replace(std=q.std.detach()), p)


def kl_of_samples(q, p):  # reads the sample where the mean belongs
    return rssm.kl_divergence(q._replace(mean=q.stoch), p._replace(mean=p.stoch))


KL_DIVERGENCE_MISTAKES = {  # the mistake -> what the check's message must say
    kl_wrong_direction: ["other direction"],
    kl_not_summed: ["SUM of the per-dimension KLs"],
    kl_averaged: ["averaged instead of summed"],
    kl_std_as_variance: ["std is treated as the variance"],
    kl_unsquared_ratio: ["std ratio is not squared"],
    kl_with_missing_attribute: ["raised AttributeError", "q.var / p.var"],  # the learner's line, quoted
    kl_prior_detached: ["no gradient flows from your KL back to p.mean", "trains both sides"],
    kl_posterior_std_detached: ["no gradient flows from your KL back to q.std"],
    kl_of_samples: ["the samples (stoch) where the means belong"],
}


@pytest.mark.parametrize("wrong", KL_DIVERGENCE_MISTAKES)
def test_kl_divergence_rejects(wrong, rejects):
    rejects(check_kl_divergence, wrong, "Exercise 3.1", *KL_DIVERGENCE_MISTAKES[wrong])


# ---------------------------------------------------------------- 3.2 kl_loss
def kl_loss_per_element(posterior, prior, free_nats=3.0):  # mean(max(KL, free_nats)), element by element
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


def kl_loss_reversed(posterior, prior, free_nats=3.0):  # lesson 7's bug, written by a learner
    kl = rssm.kl_divergence(prior, posterior).mean()
    return torch.clamp(kl, min=free_nats), kl


def kl_loss_tf1(posterior, prior, free_nats=3.0):  # the per-element form lesson 3 shows for comparison
    kl = rssm.kl_divergence(posterior, prior)
    return torch.clamp(kl - free_nats, min=0).mean(), kl.mean()


def kl_loss_fixed_free_nats(posterior, prior, free_nats=3.0):
    kl = rssm.kl_divergence(posterior, prior).mean()
    return torch.clamp(kl, min=3.0), kl


def kl_loss_prior_detached(posterior, prior, free_nats=3.0):
    kl = rssm.kl_divergence(posterior, prior.detach()).mean()
    return torch.clamp(kl, min=free_nats), kl


def kl_loss_sum_over_time(posterior, prior, free_nats=3.0):
    kl = rssm.kl_divergence(posterior, prior)
    return torch.clamp(kl.sum(0).mean(), min=free_nats), kl.mean()


def kl_per_dimension(q, p):  # the KL of each stoch dimension, not summed over them
    var_ratio = (q.std / p.std).pow(2)
    return 0.5 * (var_ratio + ((q.mean - p.mean) / p.std).pow(2) - 1 - var_ratio.log())


def kl_loss_free_nats_per_dimension(posterior, prior, free_nats=3.0):
    kl = kl_per_dimension(posterior, prior)
    return torch.clamp(kl, min=free_nats).sum(-1).mean(), kl.sum(-1).mean()


def kl_loss_free_nats_per_mean_dimension(posterior, prior, free_nats=3.0):
    kl = kl_per_dimension(posterior, prior).mean((0, 1))
    return torch.clamp(kl, min=free_nats).sum(), kl.sum()


def kl_loss_free_nats_shared_out(posterior, prior, free_nats=3.0):  # "free bits" per dimension
    kl = kl_per_dimension(posterior, prior)
    return torch.clamp(kl, min=free_nats / kl.shape[-1]).sum(-1).mean(), kl.sum(-1).mean()


KL_LOSS_MISTAKES = {  # the mistake -> what the check's message must say
    kl_loss_per_element: ["clamped each element", "mean(max(KL, free_nats))", "per-element TF1 form the lesson shows"],
    kl_loss_no_clamp: ["clamp is missing"],
    kl_loss_logs_clamped: ["the clamped loss"],
    kl_loss_summed: ["SUM of the KLs"],
    kl_loss_reversed: ["you computed KL(prior || posterior); Dreamer's loss is KL(posterior || prior)"],
    kl_loss_tf1: ["mean(max(KL - free_nats, 0))", "per-element TF1 form the lesson shows"],
    kl_loss_fixed_free_nats: ["you clamp at 3 whatever free_nats says"],
    kl_loss_prior_detached: ["no gradient reaches the prior"],
    kl_loss_sum_over_time: ["summed over time and averaged over the batch"],
    kl_loss_free_nats_per_dimension: ["applied the free nats to each stoch dimension"],
    kl_loss_free_nats_per_mean_dimension: ["applied the free nats to each stoch dimension"],
    kl_loss_free_nats_shared_out: ["applied the free nats to each stoch dimension", "free_nats / stoch"],
}


@pytest.mark.parametrize("wrong", KL_LOSS_MISTAKES)
def test_kl_loss_rejects(wrong, rejects):
    rejects(check_kl_loss, wrong, "Exercise 3.2", *KL_LOSS_MISTAKES[wrong])


# ---------------------------------------------------------------- 3.3 RSSM step
class PosteriorWithoutH(RSSM):
    def posterior(self, prior, embed):
        x = F.elu(self.posterior_hidden(torch.cat([torch.zeros_like(prior.deter), embed], -1)))
        return self._distribution(self.posterior_stats(x), prior.deter)


class NoMinStd(RSSM):
    def _distribution(self, stats, deter):
        mean, std = stats.float().chunk(2, -1)
        std = F.softplus(std)
        return RSSMState(mean, std, mean + std * torch.randn_like(std), deter)


class SampleWithoutGradient(RSSM):
    def _distribution(self, stats, deter):
        mean, std = stats.float().chunk(2, -1)
        std = F.softplus(std) + self.min_std
        return RSSMState(mean, std, torch.distributions.Normal(mean, std).sample(), deter)


class DetachedStd(RSSM):
    def _distribution(self, stats, deter):
        mean, std = stats.float().chunk(2, -1)
        std = F.softplus(std) + self.min_std
        return RSSMState(mean, std, mean + std.detach() * torch.randn_like(std), deter)


class PriorSkipsGRU(RSSM):
    def prior(self, prev_state, prev_action):
        x = F.elu(self.input_layer(torch.cat([prev_state.stoch, prev_action], -1)))
        deter = prev_state.deter  # forgot the recurrent update
        return self._distribution(self.prior_stats(F.elu(self.prior_hidden(deter))), deter)


class PriorFromOldH(RSSM):  # the prior's Gaussian reads h_{t-1}
    def prior(self, prev_state, prev_action):
        x = F.elu(self.input_layer(torch.cat([prev_state.stoch, prev_action], -1)))
        deter = self.gru(x, prev_state.deter)
        return self._distribution(self.prior_stats(F.elu(self.prior_hidden(prev_state.deter))), deter)


class PriorGRUFromZero(RSSM):
    def prior(self, prev_state, prev_action):
        x = F.elu(self.input_layer(torch.cat([prev_state.stoch, prev_action], -1)))
        deter = self.gru(x)
        return self._distribution(self.prior_stats(F.elu(self.prior_hidden(deter))), deter)


class PriorNoInputELU(RSSM):
    def prior(self, prev_state, prev_action):
        x = self.input_layer(torch.cat([prev_state.stoch, prev_action], -1))
        deter = self.gru(x, prev_state.deter)
        return self._distribution(self.prior_stats(F.elu(self.prior_hidden(deter))), deter)


class PriorActionFirst(RSSM):
    def prior(self, prev_state, prev_action):
        x = F.elu(self.input_layer(torch.cat([prev_action, prev_state.stoch], -1)))
        deter = self.gru(x, prev_state.deter)
        return self._distribution(self.prior_stats(F.elu(self.prior_hidden(deter))), deter)


class PriorGRUArgumentsSwapped(RSSM):
    def prior(self, prev_state, prev_action):
        x = F.elu(self.input_layer(torch.cat([prev_state.stoch, prev_action], -1)))
        deter = self.gru(prev_state.deter, x)
        return self._distribution(self.prior_stats(F.elu(self.prior_hidden(deter))), deter)


class PriorNoReturn(RSSM):
    def prior(self, prev_state, prev_action):
        super().prior(prev_state, prev_action)


class MeanStdSwapped(RSSM):
    def _distribution(self, stats, deter):
        std, mean = stats.float().chunk(2, -1)
        std = F.softplus(std) + self.min_std
        return RSSMState(mean, std, mean + std * torch.randn_like(std), deter)


class ExpStd(RSSM):
    def _distribution(self, stats, deter):
        mean, std = stats.float().chunk(2, -1)
        std = std.exp() + self.min_std
        return RSSMState(mean, std, mean + std * torch.randn_like(std), deter)


class PosteriorEmbedFirst(RSSM):
    def posterior(self, prior, embed):
        x = F.elu(self.posterior_hidden(torch.cat([embed, prior.deter], -1)))
        return self._distribution(self.posterior_stats(x), prior.deter)


class PosteriorNoELU(RSSM):
    def posterior(self, prior, embed):
        x = self.posterior_hidden(torch.cat([prior.deter, embed], -1))
        return self._distribution(self.posterior_stats(x), prior.deter)


class GRUMemoryDetached(RSSM):  # the values are right; the world model stops learning through time
    def prior(self, prev_state, prev_action):
        x = F.elu(self.input_layer(torch.cat([prev_state.stoch, prev_action], -1)))
        deter = self.gru(x, prev_state.deter.detach())
        return self._distribution(self.prior_stats(F.elu(self.prior_hidden(deter))), deter)


class GRUInputDetached(RSSM):
    def prior(self, prev_state, prev_action):
        x = F.elu(self.input_layer(torch.cat([prev_state.stoch, prev_action], -1))).detach()
        deter = self.gru(x, prev_state.deter)
        return self._distribution(self.prior_stats(F.elu(self.prior_hidden(deter))), deter)


class PriorActionDetached(RSSM):
    def prior(self, prev_state, prev_action):
        x = F.elu(self.input_layer(torch.cat([prev_state.stoch, prev_action.detach()], -1)))
        deter = self.gru(x, prev_state.deter)
        return self._distribution(self.prior_stats(F.elu(self.prior_hidden(deter))), deter)


class PriorStatsFromDetachedH(RSSM):
    def prior(self, prev_state, prev_action):
        x = F.elu(self.input_layer(torch.cat([prev_state.stoch, prev_action], -1)))
        deter = self.gru(x, prev_state.deter)
        return self._distribution(self.prior_stats(F.elu(self.prior_hidden(deter.detach()))), deter)


class PriorDetachesItsH(RSSM):
    def prior(self, prev_state, prev_action):
        x = F.elu(self.input_layer(torch.cat([prev_state.stoch, prev_action], -1)))
        deter = self.gru(x, prev_state.deter).detach()
        return self._distribution(self.prior_stats(F.elu(self.prior_hidden(deter))), deter)


class PriorUnderNoGrad(RSSM):
    def prior(self, prev_state, prev_action):
        with torch.no_grad():
            x = F.elu(self.input_layer(torch.cat([prev_state.stoch, prev_action], -1)))
            deter = self.gru(x, prev_state.deter)
        return self._distribution(self.prior_stats(F.elu(self.prior_hidden(deter))), deter)


class PosteriorReadsDetachedH(RSSM):
    def posterior(self, prior, embed):
        x = F.elu(self.posterior_hidden(torch.cat([prior.deter.detach(), embed], -1)))
        return self._distribution(self.posterior_stats(x), prior.deter)


class PosteriorReturnsDetachedH(RSSM):
    def posterior(self, prior, embed):
        deter = prior.deter.detach()
        x = F.elu(self.posterior_hidden(torch.cat([deter, embed], -1)))
        return self._distribution(self.posterior_stats(x), deter)


class PosteriorDetachesOnlyItsH(RSSM):
    def posterior(self, prior, embed):
        x = F.elu(self.posterior_hidden(torch.cat([prior.deter, embed], -1)))
        return self._distribution(self.posterior_stats(x), prior.deter.detach())


class PosteriorEmbedDetached(RSSM):
    def posterior(self, prior, embed):
        x = F.elu(self.posterior_hidden(torch.cat([prior.deter, embed.detach()], -1)))
        return self._distribution(self.posterior_stats(x), prior.deter)


class PosteriorThroughData(RSSM):  # .data is a detach in disguise
    def posterior(self, prior, embed):
        x = F.elu(self.posterior_hidden(torch.cat([prior.deter.data, embed], -1)))
        return self._distribution(self.posterior_stats(x), prior.deter)


class PriorHeadReLU(RSSM):
    def prior(self, prev_state, prev_action):
        x = F.elu(self.input_layer(torch.cat([prev_state.stoch, prev_action], -1)))
        deter = self.gru(x, prev_state.deter)
        return self._distribution(self.prior_stats(F.relu(self.prior_hidden(deter))), deter)


class PriorInputReLU(RSSM):
    def prior(self, prev_state, prev_action):
        x = F.relu(self.input_layer(torch.cat([prev_state.stoch, prev_action], -1)))
        deter = self.gru(x, prev_state.deter)
        return self._distribution(self.prior_stats(F.elu(self.prior_hidden(deter))), deter)


class PosteriorReLU(RSSM):
    def posterior(self, prior, embed):
        x = F.relu(self.posterior_hidden(torch.cat([prior.deter, embed], -1)))
        return self._distribution(self.posterior_stats(x), prior.deter)


class ReLUEverywhere(RSSM):
    def prior(self, prev_state, prev_action):
        x = F.relu(self.input_layer(torch.cat([prev_state.stoch, prev_action], -1)))
        deter = self.gru(x, prev_state.deter)
        return self._distribution(self.prior_stats(F.relu(self.prior_hidden(deter))), deter)

    def posterior(self, prior, embed):
        x = F.relu(self.posterior_hidden(torch.cat([prior.deter, embed], -1)))
        return self._distribution(self.posterior_stats(x), prior.deter)


class PriorHeadTanh(RSSM):
    def prior(self, prev_state, prev_action):
        x = F.elu(self.input_layer(torch.cat([prev_state.stoch, prev_action], -1)))
        deter = self.gru(x, prev_state.deter)
        return self._distribution(self.prior_stats(torch.tanh(self.prior_hidden(deter))), deter)


RSSM_STEP_MISTAKES = {  # the mistake -> what the check's message must say
    PosteriorWithoutH: ["does not change when h_t changes"],
    NoMinStd: ["without the minimum"],
    SampleWithoutGradient: ["carries no gradient"],
    DetachedStd: ["no gradient reaches prior"],
    PriorSkipsGRU: ["deter is h_{t-1} unchanged: the GRU step is missing"],
    PriorFromOldH: ["computed from h_{t-1} (prev_state.deter)", "NEW h_t that the GRU just computed"],
    PriorGRUFromZero: ["GRU cell run from a zero state"],
    PriorNoInputELU: ["without the ELU on the input layer"],
    PriorActionFirst: ["concatenated as [a_{t-1}, z_{t-1}]"],
    PriorGRUArgumentsSwapped: ["RSSM.prior(prev_state, prev_action) raised RuntimeError",
                               "self.gru(x, prev_state.deter)"],
    PriorNoReturn: ["got NoneType", "forget `return`"],
    MeanStdSwapped: ["the mean and the std are swapped"],
    ExpStd: ["std = exp(raw) + min_std", "softplus"],
    PosteriorEmbedFirst: ["concatenated as [embed, h_t]"],
    PosteriorNoELU: ["without the ELU after posterior_hidden"],
    GRUMemoryDetached: ["h_{t-1} is detached in your GRU step", "can no longer learn through time"],
    GRUInputDetached: ["z_{t-1} is detached on its way into the GRU"],
    PriorUnderNoGrad: ["h_t is cut from everything it comes from"],
    PriorDetachesItsH: ["h_t is cut from everything it comes from"],
    PriorActionDetached: ["a_{t-1} is detached on its way into the GRU", "no gradient reaches the actor"],
    PriorStatsFromDetachedH: ["your prior's mean and std read a detached h_t"],
    PosteriorReadsDetachedH: ["your posterior reads a detached h_t"],
    PosteriorReturnsDetachedH: ["your posterior's deter is a detached h_t"],
    PosteriorDetachesOnlyItsH: ["your posterior's deter is a detached h_t"],
    PosteriorEmbedDetached: ["the embedding is detached in your posterior"],
    PosteriorThroughData: ["your posterior reads a detached h_t"],
    PriorHeadReLU: ["with ReLU after prior_hidden where the RSSM uses ELU"],
    PriorInputReLU: ["with ReLU on the input layer where the RSSM uses ELU"],
    PosteriorReLU: ["with ReLU after posterior_hidden where the RSSM uses ELU"],
    ReLUEverywhere: ["with ReLU on the input layer"],
    PriorHeadTanh: ["with tanh after prior_hidden"],
}


@pytest.mark.parametrize("wrong", RSSM_STEP_MISTAKES)
def test_rssm_step_rejects(wrong, rejects):
    rejects(check_rssm_step, wrong, "Exercise 3.3", *RSSM_STEP_MISTAKES[wrong])
