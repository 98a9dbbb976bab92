"""What must hold on a CUDA GPU: the fast path (bf16 autocast, channels-last, fused Adam) and the
compiled update against the plain eager fp32 update, and a run's checkpoint moving between the
GPU and the CPU. The CUDA tests are skipped on machines without one (CI's); the resume test also
runs CPU to CPU, so its logic is tested everywhere. benchmarks/gpu/check.sh runs them on a GPU."""
from __future__ import annotations

import pytest
import torch

from dreamer_lib import cli, run_folder
from dreamer_lib.agent import DreamerV1
from dreamer_lib.buffer import random_batch
from dreamer_lib.config import make_config
from dreamer_lib.train import Trainer
from test_fast_path import assert_same_direction, small_config, update_once, uses_channels_last

CUDA = torch.cuda.is_available()
DEVICES = ["cpu", "cuda"] if CUDA else ["cpu"]
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")


def agents(plain_changes: dict, fast_changes: dict):
    config = small_config()
    torch.manual_seed(0)
    plain = DreamerV1(config.replace(device="cuda", **{"fast": False, **plain_changes}), 2)
    fast = DreamerV1(config.replace(device="cuda", **{"fast": True, **fast_changes}), 2)
    fast.load_state_dict(plain.state_dict())
    return plain, fast, random_batch(config.batch_size, config.seq_len, action_size=2)


@needs_cuda
def test_fast_path_on_cuda_is_bf16_channels_last_fused_and_matches_the_plain_path():
    plain, fast, data = agents({}, {"compile": "off"})
    assert plain.precision == torch.float32
    assert fast.precision == (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32)
    assert uses_channels_last(fast)
    assert all(group["fused"] for o in fast.optimizers.values() for group in o.param_groups)
    (plain_metrics, plain_grads, _), (fast_metrics, fast_grads, _) = update_once(plain, data), update_once(fast, data)
    for key in ("model_loss", "image_loss", "reward_loss", "kl", "actor_loss", "critic_loss"):
        assert fast_metrics[key] == pytest.approx(plain_metrics[key], rel=0.02, abs=0.02), key
    assert_same_direction(fast_grads, plain_grads, cosine_min=0.99)


@needs_cuda
def test_fast_path_in_fp32_on_cuda_matches_the_plain_path():
    """Without bf16 the fast path changes layout and the Adam kernel only (cuDNN may still use
    TF32 in convolutions, hence not 1e-6)."""
    plain, fast, data = agents({}, {"compile": "off", "precision": "fp32"})
    (plain_metrics, plain_grads, plain_weights), (fast_metrics, fast_grads, fast_weights) = (
        update_once(plain, data, lr=1e-3), update_once(fast, data, lr=1e-3))
    for key in ("model_loss", "image_loss", "reward_loss", "kl", "actor_loss", "critic_loss"):
        assert fast_metrics[key] == pytest.approx(plain_metrics[key], rel=1e-2, abs=1e-3), key
    assert_same_direction(fast_grads, plain_grads, cosine_min=0.999)
    torch.testing.assert_close(fast_weights, plain_weights, rtol=1e-3, atol=1e-4)  # fused Adam stepped alike


@needs_cuda
def test_compiled_update_on_cuda_matches_the_eager_one(recwarn, monkeypatch):
    # Compiled code draws its random numbers its own way unless told to use eager's generator:
    # without this the two updates sample other latents and cannot be compared.
    import torch._inductor.config as inductor_config
    monkeypatch.setattr(inductor_config, "fallback_random", True)
    eager, compiled, data = agents({"fast": True, "compile": "off"}, {"compile": "on"})
    (eager_metrics, eager_grads, eager_weights), (compiled_metrics, compiled_grads, compiled_weights) = (
        update_once(eager, data, lr=1e-3), update_once(compiled, data, lr=1e-3))
    assert not [w for w in recwarn if "torch.compile failed" in str(w.message)], "compiling failed: it ran eagerly"
    for key in ("model_loss", "image_loss", "reward_loss", "kl", "actor_loss", "critic_loss"):
        assert compiled_metrics[key] == pytest.approx(eager_metrics[key], rel=0.02, abs=0.02), key
    assert_same_direction(compiled_grads, eager_grads, cosine_min=0.99)
    torch.testing.assert_close(compiled_weights, eager_weights, rtol=1e-2, atol=1e-3)


@pytest.mark.parametrize("first, second", [(a, b) for a in DEVICES for b in DEVICES])
def test_a_run_written_on_one_device_resumes_on_another(tmp_path, first, second):
    """A checkpoint holds device-free weights, optimiser state and random generators: a run that
    trained on the GPU continues on the CPU (a Colab session that lost its GPU) and the other way."""
    logdir = tmp_path / "run"
    config = make_config("ci", total_frames=600, eval_every=200, device=first)
    Trainer(config, logdir, progress=False).run()
    saved = run_folder.read_checkpoint(logdir / "checkpoint.pt")

    agent = DreamerV1(config.replace(device=second), 1)
    agent.load_checkpoint(saved["agent"])
    for name, value in agent.state_dict().items():  # the weights arrive unchanged on the other device
        assert value.device.type == second, name
        assert torch.equal(value.cpu(), saved["agent"]["model"][name]), name

    assert cli.train(["--resume", str(logdir), "--device", second, "--total-frames", "800", "--no-progress"]) == 0
    resumed = run_folder.read_checkpoint(logdir / "checkpoint.pt")
    assert resumed["env_frames"] == 800 and resumed["updates"] > saved["updates"]
    assert [int(r["env_frames"]) for r in resumed["rows"]["eval"]][-2:] == [600, 800]
    assert all(torch.isfinite(v).all() for v in resumed["agent"]["model"].values() if v.is_floating_point())
