"""environment.yml and pyproject.toml describe the same environment; .ci/run does what the README says."""
import pathlib
import re
import tomllib

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_environment_yml_installs_the_project_with_its_dev_extra():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-e .[dev]" in pip, "environment.yml must install pyproject.toml's packages (pip: -e .[dev])"
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    required = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert required == ">=" + python.split("=")[1], f"{python} vs requires-python {required}"


def test_ci_runs_the_readme_install_and_test_commands():
    readme, ci = (ROOT / "README.md").read_text(), (ROOT / ".ci/run").read_text()
    first_block = re.search(r"```bash\n(.*?)```", readme, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in first_block.splitlines() if line.split("#")[0].strip()]
    ci_commands = [line.strip() for line in ci.splitlines() if line.strip() and not line.startswith("#")]
    for command in commands:
        if command.startswith("dreamer-train"):
            continue  # training is the user's first command, not CI's
        assert command in ci_commands, f"README command {command!r} is not in .ci/run"
