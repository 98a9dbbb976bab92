"""The trainer end to end, and the faults a real run meets: the run folder, exact resume after
crashes and kill -9, one writer per folder, non-finite values, bad settings and paths, signals."""
from __future__ import annotations

import csv
import json
import math
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

from dreamer_lib import cli, run_folder
from dreamer_lib.cli import evaluate as dreamer_eval
from dreamer_lib.config import Config, make_config, updates_due
from dreamer_lib.run_folder import TrainingStopped
from dreamer_lib.train import Trainer

ROOT = pathlib.Path(__file__).resolve().parents[1]
PENDULUM_WORST_REWARD = -(math.pi ** 2 + 0.1 * 8 ** 2 + 0.001 * 2 ** 2)  # per frame, Pendulum-v1's cost
WALL_CLOCK = ("wall_s", "collect_fps")  # the only columns a resumed run may write differently


def read_csv(path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def without_wall_clock(rows):
    return [{k: v for k, v in r.items() if k not in WALL_CLOCK} for r in rows]


def read_checkpoint(run) -> dict:
    return run_folder.read_checkpoint(run / "checkpoint.pt")


def exact_config(**changes) -> Config:
    """ci preset, evaluated every 200 frames, 1000 frames: 10 episodes, 8 updates, 4 evaluations."""
    return make_config("ci", **{"total_frames": 1000, "eval_every": 200, **changes})


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """One uninterrupted run of exact_config(): what every interrupted and resumed run must repeat."""
    logdir = tmp_path_factory.mktemp("reference") / "run"
    trainer = Trainer(exact_config(), logdir, progress=False)
    trainer.run()
    return logdir, trainer


@pytest.fixture
def half_run(tmp_path):
    """A run stopped cleanly at 600 env frames (total_frames=600), to resume or damage."""
    logdir = tmp_path / "run"
    Trainer(exact_config(total_frames=600), logdir, progress=False).run()
    return logdir


# ---------------------------------------------------------------------------- the run folder
def test_end_to_end_training_writes_the_run_folder(reference_run):
    logdir, trainer = reference_run
    config = exact_config()
    for name in ("config.json", "metrics.csv", "eval.csv", "checkpoint.pt", "eval.gif", "openl.gif", "openl.png",
                 "learning_curve.png"):
        assert (logdir / name).is_file() and (logdir / name).stat().st_size > 0, name
    assert list(logdir.glob("events.out.tfevents.*")), "TensorBoard events are written when tensorboard is installed"
    assert Config.from_json((logdir / "config.json").read_text()) == config

    # 1000 frames = 10 episodes of 50 agent steps (time limit 100 frames, repeat 2)
    episodes = sorted((logdir / "episodes").glob("*.npz"))
    assert len(episodes) == 10 and trainer.env_frames == 1000 and trainer.agent_steps == 500
    for path in episodes:
        with np.load(path) as data:
            assert data["image"].shape == (51, 64, 64, 3) and data["action"].shape == (51, 1)
    assert trainer.updates == updates_due(1000, config) == 8

    metrics = read_csv(logdir / "metrics.csv")
    assert [int(r["env_frames"]) for r in metrics] == [400, 600, 800, 1000]  # after prefill, then every 200 frames
    assert [int(r["updates"]) for r in metrics] == [2, 4, 6, 8]
    assert all(math.isfinite(float(r["model_loss"])) for r in metrics)
    evals = read_csv(logdir / "eval.csv")
    assert [int(r["env_frames"]) for r in evals] == [400, 600, 800, 1000]
    for row in evals:  # one eval episode of 100 frames
        assert 100 * PENDULUM_WORST_REWARD - 1 <= float(row["return_mean"]) <= 0
        assert row["returns"] == f"{float(row['return_mean']):.1f}"

    checkpoint = read_checkpoint(logdir)
    assert (checkpoint["updates"], checkpoint["env_frames"], checkpoint["episodes"]) == (8, 1000, 10)
    with Image.open(logdir / "eval.gif") as gif:
        assert gif.size == (128, 128) and 25 < gif.n_frames <= 51  # PIL merges identical frames
    with Image.open(logdir / "openl.gif") as gif:
        assert gif.size == (6 * 64, 3 * 64) and 25 < gif.n_frames <= 50  # truth / model / error rows


def test_tensorboard_holds_scalars_and_pictures(reference_run):
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    logdir, _ = reference_run
    events = event_accumulator.EventAccumulator(str(logdir), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    tags = events.Tags()
    assert {"train/model_loss", "train/actor_loss", "eval/return_mean"} <= set(tags["scalars"])
    assert [e.step for e in events.Scalars("eval/return_mean")] == [400, 600, 800, 1000]
    assert {"openl", "eval/episode"} <= set(tags["images"])


# ---------------------------------------------------------------------------- exact resume
class SimulatedKill(Exception):
    pass


def crash_after(obj, name, calls):
    """Make obj.name raise SimulatedKill on its `calls`-th call: the process dies there."""
    original, count = getattr(obj, name), [0]

    def wrapper(*args, **kwargs):
        count[0] += 1
        if count[0] >= calls:
            raise SimulatedKill(name)
        return original(*args, **kwargs)

    setattr(obj, name, wrapper)


@pytest.mark.parametrize("where", [
    [("env", "step", 130)],  # mid-episode, after the prefill
    [("agent", "update", 3)],  # inside the second training phase
    [("eval_env", "step", 70)],  # inside the second evaluation
    [("env", "step", 30), ("agent", "update", 2), ("eval_env", "step", 20), ("env", "step", 170)],  # four kills
])
def test_a_run_killed_anywhere_and_resumed_writes_the_same_rows(reference_run, tmp_path, where):
    reference, _ = reference_run
    logdir = tmp_path / "run"
    for target, method, calls in where:
        trainer = Trainer(exact_config(), logdir, progress=False)
        crash_after(getattr(trainer, target), method, calls)
        with pytest.raises(SimulatedKill):
            trainer.run()
    (logdir / "checkpoint.pt.tmp").write_bytes(b"half a checkpoint")  # as a kill during torch.save leaves
    trainer = Trainer(exact_config(), logdir, progress=False)
    trainer.run()
    for name in ("metrics.csv", "eval.csv"):
        assert without_wall_clock(read_csv(logdir / name)) == without_wall_clock(read_csv(reference / name)), name
    assert len(list((logdir / "episodes").glob("*.npz"))) == 10
    for path in (reference / "episodes").glob("*.npz"):
        with np.load(path) as want, np.load(logdir / "episodes" / path.name) as got:
            np.testing.assert_array_equal(got["action"], want["action"])


def test_a_stop_mid_phase_resumes_the_phase_exactly(reference_run, tmp_path):
    reference, _ = reference_run
    logdir = tmp_path / "run"
    trainer = Trainer(exact_config(), logdir, progress=False)
    update = trainer.agent.update

    def update_then_stop(batch):
        metrics = update(batch)
        if trainer.updates == 4:  # the fifth update of eight: inside the phase at 800 frames
            trainer.stop_requested = True
        return metrics

    trainer.agent.update = update_then_stop
    trainer.run()
    assert read_checkpoint(logdir)["updates"] == 5 and len(read_checkpoint(logdir)["phase"]) == 1
    Trainer(exact_config(), logdir, progress=False).run()
    for name in ("metrics.csv", "eval.csv"):
        assert without_wall_clock(read_csv(logdir / name)) == without_wall_clock(read_csv(reference / name)), name


def test_evaluating_more_often_does_not_change_training(reference_run, tmp_path):
    reference, _ = reference_run
    Trainer(exact_config(eval_every=100), tmp_path / "run", progress=False).run()
    assert without_wall_clock(read_csv(tmp_path / "run" / "metrics.csv")) == \
        without_wall_clock(read_csv(reference / "metrics.csv"))


def test_kill_9_of_the_command_and_resume_repeats_the_uninterrupted_run(reference_run, tmp_path):
    """A real kill -9 of dreamer-train (one thread, as the in-process reference), then --resume."""
    reference, _ = reference_run
    logdir = tmp_path / "run"
    command = [sys.executable, "-m", "dreamer_lib.cli", "--preset", "ci", "--total-frames", "1000", "--eval-every", "200",
               "--no-progress"]
    environ = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command + ["--logdir", str(logdir)], env=environ, cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not (logdir / "metrics.csv").exists() and time.time() < deadline:  # killed after training began
        time.sleep(0.1)
    process.kill()
    process.wait()
    assert process.returncode == -signal.SIGKILL
    resumed = subprocess.run(command + ["--resume", str(logdir)], env=environ, cwd=tmp_path, capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "Resuming" in resumed.stdout  # the killed process's lock did not block the resume
    for name in ("metrics.csv", "eval.csv"):
        assert without_wall_clock(read_csv(logdir / name)) == without_wall_clock(read_csv(reference / name)), name


# ---------------------------------------------------------------------------- one writer per run folder
def test_a_second_trainer_on_a_busy_folder_is_refused_naming_the_first(half_run):
    first = Trainer(exact_config(), half_run, progress=False)
    with pytest.raises(ValueError, match=rf"being trained by another process \(pid {os.getpid()}"):
        Trainer(exact_config(), half_run, progress=False)
    first.close()
    Trainer(exact_config(), half_run, progress=False).close()  # free again


# ---------------------------------------------------------------------------- non-finite values
def test_nan_parameters_stop_training_and_keep_the_last_finite_checkpoint(half_run):
    trainer = Trainer(exact_config(), half_run, progress=False)
    update = trainer.agent.update

    def poisoning_update(batch):
        metrics = update(batch)
        with torch.no_grad():
            next(trainer.agent.decoder.parameters()).fill_(float("nan"))
        return metrics

    trainer.agent.update = poisoning_update
    with pytest.raises(TrainingStopped, match=r"NaN or inf between updates 4 and 6") as info:
        trainer.run()
    checkpoint = read_checkpoint(half_run)
    assert f"keeps the last state with finite parameters ({checkpoint['env_frames']} env frames)" in str(info.value)
    assert checkpoint["updates"] == 4
    assert all(torch.isfinite(v).all() for v in checkpoint["agent"]["model"].values() if v.is_floating_point())


def test_a_diverging_learning_rate_exits_1_with_a_message_and_a_usable_checkpoint(tmp_path, capsys):
    logdir = tmp_path / "run"
    code = cli.train(["--preset", "ci", "--model-lr", "1e6", "--actor-lr", "1e6", "--logdir", str(logdir),
                       "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("error: ") and "NaN or inf" in err and "Traceback" not in err
    checkpoint = read_checkpoint(logdir)
    assert all(torch.isfinite(v).all() for v in checkpoint["agent"]["model"].values() if v.is_floating_point())
    assert dreamer_eval([str(logdir), "--episodes", "1"]) == 0


# ---------------------------------------------------------------------------- settings on resume
def test_resume_applies_changed_optimiser_settings_and_steps_and_logs_them(half_run, capsys):
    assert cli.train(["--resume", str(half_run), "--total-frames", "800", "--model-lr", "1e-3", "--adam-eps", "1e-5",
                      "--no-progress"]) == 0
    assert "model_lr 0.0006 -> 0.001" in (half_run / "changes.txt").read_text()
    checkpoint = read_checkpoint(half_run)
    assert checkpoint["env_frames"] == 800
    assert checkpoint["agent"]["optimizers"]["model"]["param_groups"][0]["lr"] == 1e-3
    assert {o["param_groups"][0]["eps"] for o in checkpoint["agent"]["optimizers"].values()} == {1e-5}
    assert Config.from_json((half_run / "config.json").read_text()).model_lr == 1e-3


@pytest.mark.parametrize("flags, fixed", [(["--preset", "cpu"], "preset"), (["--deter-size", "32"], "deter_size"),
                                          (["--seed", "3"], "seed")])
def test_resume_refuses_settings_the_run_depends_on(half_run, capsys, flags, fixed):
    config_before = (half_run / "config.json").read_text()
    assert cli.train(["--resume", str(half_run), *flags, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and fixed in err and "cannot change" in err
    assert (half_run / "config.json").read_text() == config_before


def test_a_refused_resume_leaves_the_folder_as_it_was(half_run, capsys):
    before = {p: p.read_bytes() for p in half_run.rglob("*") if p.is_file() and p.name not in (".lock", "running.json")}
    (half_run / "checkpoint.pt").write_bytes(before[half_run / "checkpoint.pt"][:-3])  # damaged, and a change asked
    assert cli.train(["--resume", str(half_run), "--model-lr", "1e-3", "--no-progress"]) == 2
    assert not (half_run / "changes.txt").exists()
    after = {p: p.read_bytes() for p in half_run.rglob("*") if p.is_file() and p.name not in (".lock", "running.json")}
    assert set(after) == set(before)


def test_a_damaged_checkpoint_is_named_not_loaded(half_run, capsys):
    data = bytearray((half_run / "checkpoint.pt").read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte, deep inside the weights
    (half_run / "checkpoint.pt").write_bytes(bytes(data))
    assert cli.train(["--resume", str(half_run), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"The checkpoint {half_run / 'checkpoint.pt'} is damaged" in err and "Traceback" not in err
    assert dreamer_eval([str(half_run)]) == 2


def test_a_garbled_csv_does_not_block_a_resume_the_checkpoint_holds_its_rows(half_run, reference_run):
    (half_run / "metrics.csv").write_text("\x00garbage,\n\"unclosed")
    Trainer(exact_config(), half_run, progress=False).run()
    assert without_wall_clock(read_csv(half_run / "metrics.csv")) == \
        without_wall_clock(read_csv(reference_run[0] / "metrics.csv"))


def test_a_resume_with_another_thread_count_says_it_is_not_exact(half_run, capsys):
    threads = torch.get_num_threads()
    torch.set_num_threads(threads + 1)
    try:
        Trainer(exact_config(), half_run, progress=False).close()
    finally:
        torch.set_num_threads(threads)
    assert f"trained with {threads} CPU threads and now has {threads + 1}" in capsys.readouterr().out


def test_each_start_and_resume_records_the_code_that_trains(half_run):
    """code.txt: one line per accepted start or resume, with the git commit of the checkout (and
    whether dreamer_lib had uncommitted changes), or the package's version outside git."""
    import re

    Trainer(exact_config(), half_run, progress=False).close()
    lines = (half_run / "code.txt").read_text().splitlines()
    assert len(lines) == 2, lines
    pattern = (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d: (git [0-9a-f]{40}( with uncommitted changes to dreamer_lib)? \(.*\)"
               r"|dreamer-course \S+ \(not a git checkout\))")
    assert all(re.fullmatch(pattern, line) for line in lines), lines


def test_episodes_deleted_mid_run_stop_with_a_message_that_says_so(half_run):
    trainer = Trainer(exact_config(), half_run, progress=False)
    shutil.rmtree(half_run / "episodes")
    with pytest.raises(TrainingStopped, match="vanished while training.*episodes/ moved or deleted"):
        trainer.run()


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("flags, message", [
    (["--total-frames", "0"], "total_frames is 0"), (["--total-frames", "-5"], "total_frames is -5"), (["--batch-size", "0"], "batch_size is 0"),
    (["--train-every", "0"], "train_every is 0"), (["--eval-every", "0"], "eval_every is 0"),
    (["--action-repeat", "0"], "action_repeat is 0"), (["--eval-episodes", "0"], "eval_episodes is 0"),
    (["--gamma", "1.5"], "gamma is 1.5"), (["--env", "NoSuchEnv-v9"], "Unknown environment"),
    (["--env", "CartPole-v1"], "continuous actions"), (["--preset", "tiny"], "Unknown preset"),
    (["--model-lr", "inf"], "model_lr is inf"), (["--free-nats", "nan"], "free_nats is nan"),
    (["--expl-noise", "nan"], "expl_noise is nan"), (["--prefill-frames", "0"], "prefill_frames is 0"),
    (["--cnn-depth", "1000000000"], "above its limit"), (["--seq-len", "500"], "no training window fits"),
])
def test_bad_settings_exit_2_with_one_message_and_leave_nothing(tmp_path, capsys, flags, message):
    logdir = tmp_path / "run"
    assert cli.train(["--preset", "ci", *flags, "--logdir", str(logdir), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert not logdir.exists()


@pytest.mark.parametrize("text, message", [("[1, 2]", "holds a JSON list"), ('"run"', "holds a JSON str"),
                                           ("{not json", "is not valid JSON"), (None, "lacks the settings ['total_frames']"),
                                           ('"device": "tpu"', "device is 'tpu'"), ('"cnn_depth": "abc"', "cnn_depth is 'abc'")])
def test_a_broken_config_json_is_named_by_resume_and_eval(half_run, capsys, text, message):
    path = half_run / "config.json"
    saved = json.loads(path.read_text())
    if text is None:
        del saved["total_frames"]
        text = json.dumps(saved)
    elif text.startswith('"') and ":" in text:
        key, value = json.loads("{" + text + "}").popitem()
        text = json.dumps({**saved, key: value})
    path.write_text(text)
    before = {p.name: p.read_bytes() for p in half_run.iterdir() if p.is_file()}
    assert cli.train(["--resume", str(half_run), "--no-progress"]) == 2
    assert dreamer_eval([str(half_run)]) == 2
    err = capsys.readouterr().err
    assert err.count(f"error: {path}") + err.count(f"error: Invalid settings in {path}") == 2 and message in err, err
    assert "Traceback" not in err
    assert {p.name: p.read_bytes() for p in half_run.iterdir() if p.is_file()} == before


@pytest.mark.parametrize("flags, message", [(["--logdir", ""], "--logdir is empty"),
                                            (["--logdir", "."], "is the current folder")])
def test_a_run_never_trains_into_the_current_folder(tmp_path, monkeypatch, capsys, flags, message):
    monkeypatch.chdir(tmp_path)
    assert cli.train(["--preset", "ci", *flags, "--no-progress"]) == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_mistyped_or_unknown_flags_exit_2(tmp_path, capsys):
    for flags in (["--free-nats", "abc"], ["--free-nat", "0"], ["--predict-continue", "maybe"]):
        with pytest.raises(SystemExit) as info:
            cli.train(["--preset", "ci", *flags, "--logdir", str(tmp_path / "run")])
        assert info.value.code == 2
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("below, message", [("", "is a file, not a folder"), ("run", "which is a file")])
def test_a_logdir_that_cannot_be_a_folder_is_refused(tmp_path, capsys, below, message):
    (tmp_path / "file").write_text("x")
    logdir = tmp_path / "file" / below if below else tmp_path / "file"
    assert cli.train(["--preset", "ci", "--logdir", str(logdir), "--no-progress"]) == 2
    assert message in capsys.readouterr().err


def test_a_checkpoint_without_the_agent_is_refused_with_a_message(half_run, capsys):
    torch.save({"weights": torch.zeros(3)}, half_run / "checkpoint.pt")
    assert cli.train(["--resume", str(half_run), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "not a checkpoint this version of dreamer-train can resume from" in err and "Traceback" not in err


def test_an_env_that_renders_nothing_is_named(monkeypatch):
    from dreamer_lib.envs import make_env
    env = make_env("pendulum", seed=0)
    monkeypatch.setattr(env.env, "render", lambda: None)
    with pytest.raises(ValueError, match="rendered None, not an RGB frame"):
        env.reset()


def small_tmpfs(path: pathlib.Path, options: str) -> bool:
    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    return done.returncode == 0


def test_a_read_only_logdir_is_refused(tmp_path, capsys):
    mount = tmp_path / "ro"
    if not small_tmpfs(mount, "size=1m,ro"):
        pytest.skip("cannot mount a read-only tmpfs here (needs root)")
    try:
        assert cli.train(["--preset", "ci", "--logdir", str(mount / "run"), "--no-progress"]) == 2
        assert "Cannot write to the run folder" in capsys.readouterr().err
    finally:
        subprocess.run(["umount", "-l", str(mount)])


def test_a_full_disk_stops_with_one_message_and_the_run_resumes_once_there_is_space(tmp_path, capsys):
    mount = tmp_path / "small"
    if not small_tmpfs(mount, "size=2m"):
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        logdir = mount / "run"
        assert cli.train(["--preset", "ci", "--logdir", str(logdir), "--no-progress"]) == 1
        err = capsys.readouterr().err
        assert err.count("error: ") == 1 and "disk is full" in err and "Traceback" not in err
        assert not list(logdir.rglob("*.tmp*")), "temporary files are cleaned up"
        moved = tmp_path / "run"
        shutil.copytree(logdir, moved)  # "space is back"
    finally:
        subprocess.run(["umount", "-l", str(mount)])
    (moved / ".lock").unlink(missing_ok=True)
    assert cli.train(["--resume", str(moved), "--no-progress"]) == 0


# ---------------------------------------------------------------------------- signals
@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_saves_a_checkpoint_and_exits_128_plus_signal(tmp_path, signum, status):
    """How soon it stops is a figure for benchmarks/stop_latency.py, not an assertion here."""
    logdir = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-m", "dreamer_lib.cli", "--preset", "ci", "--total-frames", "100000",
                                "--logdir", str(logdir), "--no-progress"], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (logdir / "metrics.csv").exists() and time.time() < deadline:
        time.sleep(0.1)
    process.send_signal(signum)
    out, err = process.communicate(timeout=300)
    assert process.returncode == status, err
    assert "saving a checkpoint" in err and "Traceback" not in err
    assert read_checkpoint(logdir)["env_frames"] >= 400


# ---------------------------------------------------------------------------- the command line
def test_help_lists_every_config_field_once_with_its_comment(capsys, monkeypatch):
    import dataclasses
    import re
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as info:
        cli.parse_train_args(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for field in dataclasses.fields(Config):
        flag = "--" + field.name.replace("_", "-") if not field.name.endswith("_") else "--" + field.name
        assert len(re.findall(re.escape(flag) + r"(?![\w-])", text)) == 1, f"{flag} should appear once in --help"
    assert "imagination horizon H" in text and "(default: " in text  # field comments are the help
    for flag in ("--resume", "--test", "--logdir", "--no-progress"):
        assert flag in text


def test_preset_sets_the_defaults_and_flags_override_them():
    args = cli.parse_train_args(["--preset", "cpu", "--free-nats", "1", "--no-fast"])
    assert (args.config.preset, args.config.cnn_depth, args.config.free_nats, args.config.fast) == ("cpu", 8, 1.0, False)
    assert cli.parse_train_args(["--test"]).config.preset == "ci"


def test_the_progress_bar_ends_on_the_last_updates_and_evaluation(tmp_path, capsys):
    """The bar's last line is what a learner reads when a run ends: it must show the last phase's
    update count and the last evaluation, not those of the pass before."""
    config = make_config("ci")
    rows = Trainer(config, tmp_path / "run", progress=True).run()
    last_line = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    assert f"{config.total_frames}/{config.total_frames}" in last_line
    assert f"upd={updates_due(config.total_frames, config)}," in last_line
    last = rows[-1]
    assert int(last["env_frames"]) == config.total_frames
    assert f"eval={float(last['return_mean']):.0f}±{float(last['return_std']):.0f}" in last_line
