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
