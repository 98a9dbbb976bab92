"""The benchmark scripts' own arithmetic (their timings are not tested: they print figures)."""
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent.parent / "benchmarks"))
from cost_to_learn import updates_to_threshold  # noqa: E402


def write_seed(path, returns):
    lines = ["env_frames,agent_steps,updates,wall_s,return_mean,return_std,returns"]
    lines += [f"{5000 * (i + 1)},{2500 * (i + 1)},{500 * (i + 1)},0,{r},0,{r}" for i, r in enumerate(returns)]
    path.write_text("\n".join(lines) + "\n")


def test_updates_to_threshold_takes_the_first_eval_where_the_seeds_mean_reaches_it(tmp_path):
    # means over the two seeds: -700, -260, -240 (first at or above -250), -300, -200
    write_seed(tmp_path / "run_seed0_eval.csv", [-600, -300, -200, -350, -150])
    write_seed(tmp_path / "run_seed1_eval.csv", [-800, -220, -280, -250, -250])
    assert updates_to_threshold(str(tmp_path / "run"), -250) == (1500, 15000, 2)
    assert updates_to_threshold(str(tmp_path / "run"), -240) == (1500, 15000, 2)  # "at least": -240 counts
    assert updates_to_threshold(str(tmp_path / "run"), -100) == (None, 0, 2)


def test_updates_to_threshold_names_the_prefix_when_no_file_matches(tmp_path):
    with pytest.raises(SystemExit, match="run_seed"):
        updates_to_threshold(str(tmp_path / "run"), -250)


def test_diagnose_run_takes_the_snapshots_and_the_last_checkpoint_in_order(tmp_path):
    from diagnose_run import checkpoints

    from dreamer_lib.run_folder import write_checkpoint

    (tmp_path / "snapshots").mkdir()
    for frames in (10000, 5000):
        write_checkpoint(tmp_path / "snapshots" / f"checkpoint_{frames}.pt", {"env_frames": frames})
    write_checkpoint(tmp_path / "checkpoint.pt", {"env_frames": 12000})
    assert [(f, p.name) for f, p in checkpoints(tmp_path)] == [
        (5000, "checkpoint_5000.pt"), (10000, "checkpoint_10000.pt"), (12000, "checkpoint.pt")]
    write_checkpoint(tmp_path / "checkpoint.pt", {"env_frames": 10000})  # the last one already snapshotted
    assert [f for f, _ in checkpoints(tmp_path)] == [5000, 10000]


def test_diagnose_run_measures_an_agent_on_seeded_episodes():
    import math

    import torch
    from diagnose_run import COLUMNS, measure

    from dreamer_lib.agent import DreamerV1
    from dreamer_lib.config import make_config
    from dreamer_lib.envs import make_env

    torch.manual_seed(0)
    agent = DreamerV1(make_config("ci"), action_size=1, device="cpu")
    env = make_env("pendulum", 2, 100, seed=0)
    first, again = measure(agent, env, episodes=1, start=10), measure(agent, env, episodes=1, start=10)
    assert set(first) == set(COLUMNS)
    for key in COLUMNS:  # seeded: the same episodes, the same numbers
        assert first[key] == again[key] or math.isnan(first[key]) and math.isnan(again[key]), key
    assert 0 <= first["saturated"] <= 1 and first["std"] > 0 and first["return"] < 0


def test_return_gaps_compare_three_15_step_returns_with_the_real_one():
    import numpy as np
    import torch
    from diagnose_run import return_gaps

    from dreamer_lib.agent import DreamerV1
    from dreamer_lib.config import make_config
    from dreamer_lib.envs import make_env, run_episode
    from dreamer_lib.evaluate import seeded
    from dreamer_lib.networks import preprocess

    torch.manual_seed(0)
    config = make_config("ci", horizon=3, gamma=0.9, reward_scale=0.5)
    agent = DreamerV1(config, action_size=1, device="cpu")
    episode = run_episode(make_env("pendulum", 2, 40, seed=0), seed=0)  # 21 steps, random actions
    gaps = return_gaps(agent, episode, seed=7, every=5)

    # The reference: the same random draws (same calls, same order, same seed), the sums as loops.
    images = torch.as_tensor(episode["image"])[:, None]
    actions = torch.as_tensor(episode["action"])[:, None]
    with torch.no_grad(), seeded(7, agent.device):
        posterior, _ = agent.rssm.rollout_observation(agent.encoder(preprocess(images)), actions,
                                                      agent.rssm.get_initial_state(1, "cpu"))
        starts = [0, 5, 10, 15]  # every 5th step with 3 steps after it (21 steps)
        first = posterior.at((torch.tensor(starts), 0))
        opened = agent.rssm.rollout_prior(torch.stack([actions[[t + k for t in starts], 0] for k in (1, 2, 3)]), first)
        imagined, _, _ = agent.rssm.rollout_imagination(first, agent.actor, 3)
        value = (agent.critic(posterior.features)[:, 0] / 0.5).numpy()
        model = {name: ((agent.reward(s.features) / 0.5).numpy(), (agent.critic(s.at(-1).features) / 0.5).numpy())
                 for name, s in (("open gap", opened), ("imag gap", imagined))}
    expected = {"value gap": [], "open gap": [], "imag gap": []}
    for i, t in enumerate(starts):
        real = sum(0.9 ** (k - 1) * episode["reward"][t + k] for k in (1, 2, 3)) + 0.9 ** 3 * value[t + 3]
        expected["value gap"].append(value[t] - real)
        for name, (rewards, last_value) in model.items():
            guess = sum(0.9 ** (k - 1) * rewards[k - 1, i] for k in (1, 2, 3)) + 0.9 ** 3 * last_value[i]
            expected[name].append(guess - real)
    for name, values in expected.items():
        assert gaps[name] == pytest.approx(np.mean(values), rel=1e-4, abs=1e-4), name


def test_upright_finds_the_step_from_which_the_pole_stays_up():
    import types

    import numpy as np
    from upright import play

    angles = [np.pi, 1.0, 0.1, -0.5, 0.1, -0.1]  # after each agent step; 20 degrees is 0.349 rad
    inner = types.SimpleNamespace(state=None)

    class ScriptedEnv:
        env = types.SimpleNamespace(unwrapped=inner)

        def reset(self, seed):
            self.t = 0
            return "frame", {}

        def step(self, action):
            inner.state = [angles[self.t], 0.0]
            self.t += 1
            return "frame", -float(self.t), False, self.t == len(angles), {}

    agent = types.SimpleNamespace(initial_policy_state=lambda: None, policy=lambda image, state, explore: (0.0, state))
    total, stays, share = play(agent, ScriptedEnv(), seed=0, degrees=20)
    assert total == -21.0  # -1 - 2 - ... - 6
    assert stays == 4  # up at steps 2, 4, 5; down at 3
    assert share == 2 / 3  # the second half, steps 3-5
    angles[-1] = 0.5
    assert play(agent, ScriptedEnv(), seed=0, degrees=20)[1] is None  # down at the end: never up for good


def test_reward_fit_bins_the_absolute_error_by_the_real_reward():
    import numpy as np
    from reward_fit import errors_by_size

    real = np.array([-25.0, -15.0, -12.0, -1.0, -0.5])
    predicted = np.array([-24.0, -17.0, -12.5, -1.0, -0.1])
    rows = errors_by_size(real, predicted, bins=(-np.inf, -20.0, -10.0, -2.0, np.inf))
    # [-inf, -20): |1|; [-20, -10): (2 + 0.5) / 2; [-10, -2): none; [-2, inf): (0 + 0.4) / 2
    assert [(steps, round(mean, 6)) for _, _, steps, mean in rows] == [(1, 1.0), (2, 1.25), (2, 0.2)]
    assert [(low, high) for low, high, _, _ in rows] == [(-np.inf, -20.0), (-20.0, -10.0), (-2.0, np.inf)]


def test_update_times_times_every_setting_in_every_round_and_trains_each_agent_alone():
    from dreamer_lib.config import make_config
    from dreamer_lib.course.costs import update_times

    configs = {"small": make_config("ci", device="cpu"), "discrete": make_config("ci", device="cpu", latent_classes=4)}
    times = update_times(configs, rounds=3, warmup=1)
    assert list(times) == ["small", "discrete"]
    assert all(len(values) == 3 and all(t > 0 for t in values) for values in times.values())
