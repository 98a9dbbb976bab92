"""Models that ship with the course (course/pretrained.py, tools/export_pretrained.py): a tiny ci
run, exported into a temporary models folder, loads by name, plays as its card says, drives the
dream and continues training as lesson 7 does; bad names and damaged files are named. The last
test checks the model the course ships, once it is committed."""
from __future__ import annotations

import pathlib
import re
import shutil
import sys

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from dreamer_lib import cli
from dreamer_lib.agent import DreamerV1
from dreamer_lib.buffer import ReplayBuffer
from dreamer_lib.config import make_config
from dreamer_lib.course.pretrained import MODELS, check_returns, pretrained
from dreamer_lib.course.scale import trained_run
from dreamer_lib.evaluate import load_agent, load_run_config, seeded
from dreamer_lib.run_folder import read_checkpoint
from dreamer_lib.train import Trainer

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import export_pretrained  # noqa: E402

SHIPPED = MODELS / "pendulum-cpu"  # the course's own models folder, whatever DREAMER_MODELS says


def card_returns(folder: pathlib.Path) -> list[str]:
    """The returns on the card's check line, as printed there."""
    line = re.search(r"^check: seed \d+, \d+ episodes, returns (.+)$", (folder / "CARD.md").read_text(), re.M)
    return line.group(1).split()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny finished run: ci preset, 400 env frames = 2 episodes of random actions, then 2 by the policy."""
    logdir = tmp_path_factory.mktemp("run") / "run"
    config = make_config("ci", total_frames=400, prefill_frames=200, eval_every=200, device="cpu")
    Trainer(config, logdir, progress=False).run()
    return logdir


@pytest.fixture(scope="module")
def model(run, tmp_path_factory):
    """The run exported as "ci-test" into a models folder of its own (DREAMER_MODELS, for this module)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DREAMER_MODELS", str(tmp_path_factory.mktemp("models")))
        yield export_pretrained.export(run, "ci-test", keep=1)


def play_back(agent, episode: dict) -> tuple[np.ndarray, np.ndarray]:
    """The actor's mode and the latent state (h, z) on every frame of an episode, the posterior's
    noise seeded. (An untrained ci actor's mode sits at a torque limit: the states tell more.)"""
    state, actions, features = agent.initial_policy_state(), [], []
    with seeded(0, agent.device):
        for image in episode["image"]:
            action, state = agent.policy(image, state, explore=False)
            actions.append(action)
            features.append(state[0].features[0].cpu().numpy())
    return np.array(actions), np.array(features)


def test_the_export_holds_the_weights_alone_the_curve_a_few_episodes_and_the_card(run, model):
    assert model == pretrained("ci-test")
    saved = read_checkpoint(model / "model.pt")
    assert set(saved) == {"agent", "env_frames", "updates"} and set(saved["agent"]) == {"model"}  # no optimiser
    assert all(w.dtype == torch.float16 for w in saved["agent"]["model"].values() if w.is_floating_point())
    assert (model / "model.pt").stat().st_size < (run / "checkpoint.pt").stat().st_size / 3
    assert (model / "eval.csv").read_bytes() == (run / "eval.csv").read_bytes()
    assert (model / "metrics.csv").read_bytes() == (run / "metrics.csv").read_bytes()
    assert load_run_config(model) == load_run_config(run).replace(device="auto")
    episodes = sorted(p.name for p in (run / "episodes").glob("*.npz"))
    assert sorted(p.name for p in (model / "episodes").iterdir()) == [episodes[0], episodes[-1]]
    card = (model / "CARD.md").read_text()
    command = "dreamer-train --preset ci --seed 0 --total-frames 400 --prefill-frames 200 --eval-every 200 --device cpu"
    assert f"\n{command}\n" in card
    assert "| 400 |" in card and "random actions (prefill)" in card and "the policy, with exploration noise" in card


@pytest.mark.parametrize("name, message", [("ci-test", "exists: remove it first"), ("../elsewhere", "name a model")])
def test_the_export_refuses_a_name_taken_or_odd(run, model, name, message, capsys):
    assert export_pretrained.main([str(run), name]) == 2
    assert message in capsys.readouterr().err


def test_loaded_by_name_it_plays_as_its_card_says(model):
    agent, env, checkpoint = load_agent(pretrained("ci-test"), device="cpu")  # the card's check ran on the CPU
    assert (checkpoint["env_frames"], checkpoint["updates"]) == (400, 4)
    assert [f"{r:.1f}" for r in check_returns(agent, env)] == card_returns(model)


def test_the_fp16_weights_act_as_the_runs_own(run, model):
    original, _, _ = load_agent(run)
    shipped, _, _ = load_agent(model, device="cpu")
    assert all(p.dtype == q.dtype for p, q in zip(original.parameters(), shipped.parameters()))  # fp32 again
    with np.load(sorted((run / "episodes").glob("*.npz"))[-1]) as episode:
        (actions, states), (their_actions, their_states) = play_back(shipped, episode), play_back(original, episode)
    np.testing.assert_allclose(actions, their_actions, atol=2e-2)
    np.testing.assert_allclose(states, their_states, atol=1e-2)
    assert not np.array_equal(states, their_states)  # the weights did go through fp16


def test_dreamer_eval_plays_a_model_by_name(model, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.evaluate(["pretrained:ci-test", "--episodes", "1"]) == 0
    assert "checkpoint at 400 env frames / 4 updates" in capsys.readouterr().out
    assert (tmp_path / "ci-test-eval-400.gif").is_file()  # in the current folder, not the installed library


def test_an_unknown_name_is_refused_with_the_names_there_are(model, capsys):
    with pytest.raises(ValueError, match=r"No pretrained model 'pendulum-gpu' in .*\. Available: ci-test\."):
        pretrained("pendulum-gpu")
    assert cli.evaluate(["pretrained:pendulum-gpu"]) == 2
    err = capsys.readouterr().err
    assert "Available: ci-test" in err and "Traceback" not in err


def test_a_damaged_model_file_is_refused_by_name(model, tmp_path):
    copy = shutil.copytree(model, tmp_path / "copy")
    data = bytearray((copy / "model.pt").read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte, inside the weights
    (copy / "model.pt").write_bytes(bytes(data))
    with pytest.raises(ValueError, match=re.escape(f"The checkpoint {copy / 'model.pt'} is damaged")) as error:
        load_agent(copy)
    assert "ships with the course library" in str(error.value)


def test_the_dream_and_its_widget_drive_a_shipped_model(model):
    widgets = pytest.importorskip("ipywidgets")
    from dreamer_lib.course.widgets import drive_the_dream

    agent, env, _ = load_agent(pretrained("ci-test"))
    box = drive_the_dream(agent, env, seed=0, context=2)
    assert isinstance(box, widgets.VBox)
    box.children[1].children[2].value = 3  # N
    next(b for b in box.children[1].children if getattr(b, "description", "") == "play N steps").click()
    history = box.dream.history()
    assert len(history["step"]) == 3 and np.isfinite(history["predicted_reward"]).all()
    plt.close("all")


def test_lesson_7_continues_training_from_a_shipped_model(model):
    """Lesson 7's experiments load checkpoint["agent"] into a new agent and train its world model on
    the folder's episodes: with a shipped model, Adam starts afresh."""
    agent, _, checkpoint = load_agent(pretrained("ci-test"))
    copy = DreamerV1(agent.config, agent.action_size)
    copy.load_checkpoint(checkpoint["agent"])
    assert all((p == q).all() for p, q in zip(agent.parameters(), copy.parameters()))
    replay = ReplayBuffer(model / "episodes")
    assert replay.load() == 2
    metrics = copy.update_world_model(replay.sample(3, 8))
    assert all(np.isfinite(float(value)) for value in metrics.values())


def test_trained_run_prefers_lesson_6_then_the_shipped_model(model, tmp_path, monkeypatch):
    monkeypatch.setenv("DREAMER_RUNS", str(tmp_path / "runs"))
    assert trained_run() is None  # no lesson 6 run, and no pendulum-cpu in this models folder
    shutil.copytree(model, model.parent / "pendulum-cpu")
    try:
        assert trained_run() == model.parent / "pendulum-cpu"
        (tmp_path / "runs" / "lesson6").mkdir(parents=True)
        (tmp_path / "runs" / "lesson6" / "checkpoint.pt").write_bytes(b"")
        assert trained_run() == tmp_path / "runs" / "lesson6"
    finally:
        shutil.rmtree(model.parent / "pendulum-cpu")


@pytest.mark.skipif(not (SHIPPED / "model.pt").exists(),
                    reason="pendulum-cpu is not shipped yet: python tools/export_pretrained.py RUN pendulum-cpu")
def test_the_shipped_model_plays_as_its_card_says():
    """On the machine of the export the returns repeat to the digit; another CPU's kernels round
    differently, which can move a trajectory a little: the mean must hold within 10%."""
    agent, env, _ = load_agent(SHIPPED, device="cpu")
    card = np.array(card_returns(SHIPPED), float)
    returns = check_returns(agent, env)
    assert np.mean(returns) == pytest.approx(np.mean(card), rel=0.1), (
        f"{SHIPPED} returned {np.round(returns, 1)}, its card says {card} (CARD.md names the machine of the export)")
