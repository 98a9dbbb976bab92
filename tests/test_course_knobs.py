"""The knobs of lessons 3 and 5 (dreamer_lib/course/knobs.py): what each one shows is checked
against references written here, with plain loops and numpy (never the library function the
knob calls), and the figures and widgets are built without a screen."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pytest

from dreamer_lib.course import knobs

# ------------------------------------------------------------------------------------- free nats


def batch_kls(mean_kl, states=8):
    return mean_kl * np.linspace(0.2, 1.8, states)


def test_free_nats_above_the_mean_kl_send_exactly_zero_gradient():
    d = knobs.free_nats_core(free_nats=3.0, mean_kl=2.0)
    assert d["mean_kl"] == pytest.approx(2.0)
    assert d["loss"] == pytest.approx(3.0)  # max(2, 3)
    assert (d["kl"] > 3.0).any(), "the batch should hold states above the line, which still get no gradient"
    assert np.all(d["grad"] == 0) and np.all(d["grad_posterior_mean"] == 0)


def test_free_nats_below_the_mean_kl_give_the_unclamped_gradient():
    # unit stds, means d apart in dim 0: KL = d^2 / 2 per state; the loss is the mean over B states, so
    # dL/dmu_q = d / B, dL/dmu_p = -d / B, dL/dsigma_q = (sigma_q - 1 / sigma_q) / B = 0,
    # dL/dsigma_p = (1 / sigma_p - (sigma_q^2 + d^2) / sigma_p^3) / B = -d^2 / B
    d = knobs.free_nats_core(free_nats=1.0, mean_kl=4.0)
    kls = batch_kls(4.0)
    shift, batch = np.sqrt(2 * kls), len(kls)
    assert d["loss"] == pytest.approx(kls.mean()) and d["mean_kl"] == pytest.approx(4.0)
    expected_mean_grad = np.zeros((batch, 4))
    expected_mean_grad[:, 0] = shift / batch
    np.testing.assert_allclose(d["grad_posterior_mean"], expected_mean_grad, atol=1e-12)
    np.testing.assert_allclose(d["grad"], np.sqrt(2 * shift ** 2 + shift ** 4) / batch, rtol=1e-9)
    np.testing.assert_allclose(d["grad"], d["grad_unclamped"], rtol=1e-12)


def test_free_nats_sweep_switches_the_gradient_off_at_the_mean_kl():
    d = knobs.free_nats_core(free_nats=3.0, mean_kl=2.5)
    total = np.linalg.norm(d["grad_unclamped"])
    below, above = d["sweep"] < 2.5 - 1e-3, d["sweep"] > 2.5 + 1e-3
    assert below.sum() > 5 and above.sum() > 5
    np.testing.assert_allclose(d["sweep_grad"][below], total, rtol=1e-9)
    assert np.all(d["sweep_grad"][above] == 0)


# ---------------------------------------------------------------------------- lambda and horizon


def discounted_sum(rewards, gamma):
    return sum(gamma ** k * r for k, r in enumerate(rewards))


def test_true_return_is_the_discounted_sum_of_the_rewards():
    d = knobs.lambda_return_core()
    for t in range(knobs.STEPS):
        assert d["true"][t] == pytest.approx(discounted_sum(knobs.REWARDS[t:], knobs.GAMMA))
    assert d["true"][knobs.STEPS] == 0


@pytest.mark.parametrize("horizon", [1, 7, 15, 30])
def test_lambda_zero_is_the_one_step_td_target(horizon):
    d = knobs.lambda_return_core(lambda_=0.0, horizon=horizon)
    r, v, gamma = d["rewards"], d["values"], knobs.GAMMA
    assert d["returns"].shape == (horizon,)
    for t in range(horizon):
        assert d["returns"][t] == pytest.approx(r[t] + gamma * v[t + 1])


@pytest.mark.parametrize("horizon", [1, 15, 25, 30])
def test_lambda_one_is_the_discounted_reward_sum_bootstrapped_at_the_horizon(horizon):
    d = knobs.lambda_return_core(lambda_=1.0, horizon=horizon)
    r, v, gamma = d["rewards"], d["values"], knobs.GAMMA
    for t in range(horizon):
        expected = discounted_sum(r[t:horizon], gamma) + gamma ** (horizon - t) * v[horizon]
        assert d["returns"][t] == pytest.approx(expected)


@pytest.mark.parametrize("lambda_,horizon", [(0.0, 5), (0.5, 1), (0.7, 12), (0.95, 15), (1.0, 30)])
def test_weights_and_return_are_the_mixture_of_n_step_returns(lambda_, horizon):
    d = knobs.lambda_return_core(lambda_, horizon)
    r, v, gamma = d["rewards"], d["values"], knobs.GAMMA
    weights = [(1 - lambda_) * lambda_ ** (n - 1) for n in range(1, horizon)] + [lambda_ ** (horizon - 1)]
    np.testing.assert_allclose(d["weights"], weights, atol=1e-12)
    assert d["weights"].sum() == pytest.approx(1.0)
    n_step = [discounted_sum(r[:n], gamma) + gamma ** n * v[n] for n in range(1, horizon + 1)]
    assert d["returns"][0] == pytest.approx(float(np.dot(weights, n_step)))


def test_a_reward_past_the_horizon_reaches_the_return_only_through_the_critic():
    short, long = knobs.lambda_return_core(1.0, 15), knobs.lambda_return_core(1.0, 30)
    assert short["returns"][0] == pytest.approx(knobs.GAMMA ** 15 * short["values"][15])
    assert abs(long["returns"][0] - long["true"][0]) < abs(short["returns"][0] - short["true"][0])


# ---------------------------------------------------------------------------------- tanh-Gaussian


def test_tanh_gaussian_uses_the_actors_mean_and_std():
    for raw_mean, mean_scale, init_std in [(0.0, 5.0, 5.0), (8.0, 5.0, 0.5), (-3.0, 1.0, 2.0), (20.0, 2.0, 0.1)]:
        d = knobs.tanh_gaussian_core(raw_mean, mean_scale, init_std, samples=100)
        assert d["mean"] == pytest.approx(mean_scale * math.tanh(raw_mean / mean_scale), abs=1e-5)
        assert abs(d["mean"]) <= mean_scale
        assert d["std"] == pytest.approx(init_std + 1e-4, rel=1e-4)  # softplus(log(e^s - 1)) = s, plus min_std
    np.testing.assert_allclose(d["curve_mean"], 2.0 * np.tanh(d["curve_raw"] / 2.0), atol=1e-5)


def test_actions_stay_in_the_interval_and_init_std_sets_their_spread():
    spreads = []
    for init_std in (0.2, 0.5, 1.0, 5.0):
        actions = knobs.tanh_gaussian_core(0.0, 5.0, init_std, samples=5000)["actions"]
        assert np.all(np.abs(actions) <= 1)  # in float32, tanh of a large sample rounds to exactly +-1
        spreads.append(actions.std())
    assert np.all(np.diff(spreads) > 0), spreads
    assert np.all(np.abs(knobs.tanh_gaussian_core(0.0, 5.0, 0.5, samples=5000)["actions"]) < 1)


def test_saturated_fraction_matches_the_gaussian_tail():
    # |tanh(x)| > 0.99 <=> |x| > atanh(0.99); x ~ N(0, 5^2) at a raw mean of 0 and init std 5
    d = knobs.tanh_gaussian_core(0.0, 5.0, 5.0)
    z = math.atanh(0.99) / d["std"]
    assert d["saturated"] == pytest.approx(1 - math.erf(z / math.sqrt(2)), abs=0.02)
    assert knobs.tanh_gaussian_core(0.0, 5.0, 0.3)["saturated"] == 0


# ------------------------------------------------------------------------------- figures, widgets


@pytest.mark.parametrize("figure", [knobs.free_nats_figure, knobs.lambda_return_figure, knobs.tanh_gaussian_figure])
def test_figures_draw_without_a_screen(figure):
    fig = figure()
    assert isinstance(fig, plt.Figure) and len(fig.axes) == knobs.PANELS[figure.__name__][0]
    plt.close(fig)


def test_compare_stacks_one_row_per_setting():
    fig = knobs.compare(knobs.lambda_return_figure, [dict(lambda_=0.0, horizon=5), dict(lambda_=1.0, horizon=30)])
    assert len(fig.axes) == 4 and fig.axes[0].get_title().startswith("λ = 0.00, H = 5")
    plt.close(fig)


@pytest.mark.parametrize("widget", [knobs.free_nats_widget, knobs.lambda_return_widget, knobs.tanh_gaussian_widget])
def test_widgets_build_without_a_display(widget):
    widgets = pytest.importorskip("ipywidgets")
    box = widget()
    assert isinstance(box, widgets.VBox)
    assert all(isinstance(s, (widgets.FloatSlider, widgets.IntSlider)) for s in box.children[0].children)
    plt.close("all")


def test_moving_a_slider_redraws_with_its_value():
    widgets = pytest.importorskip("ipywidgets")
    calls = []

    def figure(lambda_, horizon):
        calls.append((lambda_, horizon))
        return plt.figure()

    box = knobs._widget(figure, lambda_=(0.0, 1.0, 0.05, 0.95), horizon=(1, 30, 1, 15))
    lam, horizon = box.children[0].children
    assert isinstance(horizon, widgets.IntSlider) and lam.description == "lambda"
    horizon.value = 7
    assert calls[0] == (0.95, 15) and calls[-1] == (0.95, 7)
