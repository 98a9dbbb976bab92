"""The fast update path computes the same losses and gradients as the plain eager fp32 path."""
import pytest
import torch

from dreamer_lib.agent import DreamerV1
from dreamer_lib.buffer import random_batch
from dreamer_lib.config import make_config


def small_config(**changes):
    return make_config("ci", batch_size=4, seq_len=10, cnn_depth=8, dense_units=32, deter_size=32, hidden_size=32,
                       **changes)


def update_once(agent, data, lr: float = 0.0):
    """One update with the same reparameterisation noise; lr 0 leaves the weights where they were.
    Returns (metrics, gradients per group, weights after the step), all as CPU floats."""
    for optimizer in agent.optimizers.values():
        for group in optimizer.param_groups:
            group["lr"] = lr
    torch.manual_seed(123)
    metrics = agent.update(data)
    grads = {group: torch.cat([p.grad.flatten().float().cpu() for p in params]) for group, params in agent.params.items()}
    weights = torch.cat([p.detach().flatten().float().cpu() for p in agent.parameters()])
    return {k: float(v) for k, v in metrics.items()}, grads, weights


def uses_channels_last(agent) -> bool:
    return agent.decoder.deconvs[0].weight.is_contiguous(memory_format=torch.channels_last)


def assert_same_direction(fast_grads, plain_grads, cosine_min: float):
    for group in plain_grads:
        cosine = torch.nn.functional.cosine_similarity(fast_grads[group], plain_grads[group], dim=0)
        ratio = fast_grads[group].norm() / plain_grads[group].norm()
        assert cosine > cosine_min, f"{group} gradients: cosine {cosine:.5f}"
        assert 0.95 < ratio < 1.05, f"{group} gradient norms differ: ratio {ratio:.3f}"


def pair(precision):
    config = small_config()
    torch.manual_seed(0)
    plain = DreamerV1(config.replace(fast=False), 2, "cpu")
    fast = DreamerV1(config.replace(fast=True, precision=precision, compile="off"), 2, "cpu")
    fast.load_state_dict(plain.state_dict())
    assert uses_channels_last(fast) and not uses_channels_last(plain), "the fast path did not switch the convs' layout"
    data = random_batch(config.batch_size, config.seq_len, action_size=2)
    return update_once(plain, data)[:2], update_once(fast, data)[:2]


def test_fast_path_in_fp32_matches_plain_path(monkeypatch):
    """channels-last convolutions only change memory layout: results agree to float rounding.
    The fast path takes them in fp32 on AVX512 CPUs only; this test says it has one, so that the
    layout is tested on every machine."""
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    (plain_metrics, plain_grads), (fast_metrics, fast_grads) = pair("fp32")
    for key in ("model_loss", "image_loss", "reward_loss", "kl", "actor_loss", "critic_loss"):
        assert fast_metrics[key] == pytest.approx(plain_metrics[key], rel=1e-4, abs=1e-4), key
    for group in plain_grads:
        torch.testing.assert_close(fast_grads[group], plain_grads[group], rtol=1e-3, atol=1e-4)


def test_fast_path_in_bf16_matches_plain_path_within_bf16_tolerance():
    """bf16 autocast keeps 8 bits of mantissa in matmuls and convs (distributions and losses stay
    fp32), so losses agree to about 1% and gradients point the same way (cosine > 0.99)."""
    (plain_metrics, plain_grads), (fast_metrics, fast_grads) = pair("bf16")
    assert fast_metrics["image_loss"] != plain_metrics["image_loss"], "autocast did not change anything"
    for key in ("model_loss", "image_loss", "reward_loss", "kl", "actor_loss", "critic_loss"):
        assert fast_metrics[key] == pytest.approx(plain_metrics[key], rel=0.02, abs=0.02), key
    assert_same_direction(fast_grads, plain_grads, cosine_min=0.99)


def test_auto_precision_is_fp32_on_every_cpu_and_bf16_only_when_asked(monkeypatch):
    """bf16 autocast measured slower than fp32 on the CPU even with bf16 units (fast.py), so the
    default must not depend on the CPU's flags."""
    from dreamer_lib import fast
    for has_bf16 in (True, False):
        monkeypatch.setattr(fast, "cpu_has_bf16", lambda: has_bf16)
        assert fast.resolve_precision(make_config("cpu"), torch.device("cpu")) == torch.float32
        assert fast.resolve_precision(make_config("cpu", precision="bf16"), torch.device("cpu")) == torch.bfloat16
    assert fast.resolve_precision(make_config("cpu", precision="bf16", fast=False), torch.device("cpu")) == torch.float32


def test_channels_last_only_where_it_measured_faster(monkeypatch):
    """fp32 on the CPU: channels-last on AVX512 CPUs (the cpu preset's update 0.92x), the plain
    layout on AVX2 ones (slower there); always with bf16 or on CUDA; never without the fast path."""
    from dreamer_lib import fast
    cpu, cuda, fp32, bf16 = torch.device("cpu"), torch.device("cuda"), torch.float32, torch.bfloat16
    for capability, expected in (("AVX512", True), ("AVX2", False), ("DEFAULT", False)):
        monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
        assert fast.use_channels_last(make_config("cpu"), cpu, fp32) is expected, capability
        assert fast.use_channels_last(make_config("cpu"), cpu, bf16) is True, capability
        assert fast.use_channels_last(make_config("cpu"), cuda, fp32) is True, capability
        assert fast.use_channels_last(make_config("cpu", fast=False), cpu, fp32) is False, capability
