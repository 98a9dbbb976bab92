"""Train the real agent with your own code: collect your exercise solutions into a components
file, check each one, and train with them (the algorithm side is dreamer_lib/components.py).

    from dreamer_lib.course.components import write_components, train
    write_components("my_dreamer.py")                  # run in notebooks/workbooks: your @save cells
    train("my_dreamer.py", make_config("ci"), "runs/mine")

or, from a shell, `dreamer-train --components my_dreamer.py` (the same checks, then the trainer).
"""
from __future__ import annotations

import json
import pathlib

from dreamer_lib.components import CALLED_FROM
from dreamer_lib.config import Config
from dreamer_lib.course.checks import CheckFailed
from dreamer_lib.course.checks.actor_critic import (check_actor_loss, check_critic_loss, check_discount_weights,
                                                    check_lambda_returns)
from dreamer_lib.course.checks.networks import check_conv_decoder, check_conv_encoder
from dreamer_lib.course.checks.rssm import check_kl_divergence, check_kl_loss, check_rssm_step
from dreamer_lib.course.checks.train import check_updates_due
from dreamer_lib.train import Trainer

# The exercise check of each name the trainer can take from a components file.
CHECKS = {"ConvEncoder": check_conv_encoder, "ConvDecoder": check_conv_decoder,
          "kl_divergence": check_kl_divergence, "kl_loss": check_kl_loss, "RSSM": check_rssm_step,
          "compute_lambda_returns": check_lambda_returns, "discount_weights": check_discount_weights,
          "compute_actor_loss": check_actor_loss, "compute_critic_loss": check_critic_loss,
          "updates_due": check_updates_due}
assert CHECKS.keys() == CALLED_FROM.keys(), "every swappable name needs its check"

SAVE = "# @save dreamer_lib."  # the first line of a cell that holds a piece of the library (lesson 1)
UNWRITTEN = 'raise NotImplementedError("Exercise'  # a blank the learner has not filled in yet


class ComponentRejected(ValueError):
    """A components file's function failed its exercise check: the trainer does not start."""


def check_components(components: dict[str, object], source="your components") -> None:
    """Run each component's exercise check; the first that fails stops everything, by name."""
    for name, component in components.items():
        try:
            CHECKS[name](component)
        except NotImplementedError as blank:
            raise ComponentRejected(f"{name} from {source} is not written yet ({blank}). Write it, or delete it "
                                    "from the file to train with the library's.") from None
        except CheckFailed as failure:
            raise ComponentRejected(f"{name} from {source} failed its check, so training did not start. "
                                    f"{failure}") from None


def write_components(path: str | pathlib.Path, notebooks: list | None = None) -> pathlib.Path:
    """Write the `# @save` cells of `notebooks` (default: the lessons or workbooks in the current
    folder, so from a workbook, your workbooks) into one components file. A cell with a blank not
    yet filled in is left out (the library's version is used); the file first imports each cell's
    module, so the cells find the names they used in the notebook."""
    notebooks = sorted(pathlib.Path(".").glob("0[0-9]_*.ipynb")) if notebooks is None else notebooks
    modules, cells, kept, skipped = [], [], [], []
    for workbook in map(pathlib.Path, notebooks):
        for cell in json.loads(workbook.read_text())["cells"]:
            source = "".join(cell["source"])
            if cell["cell_type"] != "code" or not source.startswith(SAVE):
                continue
            module = source.splitlines()[0][len(SAVE):].strip()
            (skipped if UNWRITTEN in source else kept).append(f"{workbook.stem}: {module}")
            if UNWRITTEN not in source:
                modules += [module] if module not in modules else []
                cells.append(f"# ---- from {workbook.name}\n{source}")
    # The library's names first (what the cells use, as in the notebooks), then the cells: yours win.
    imports = "".join(f"from dreamer_lib.{m} import *  # noqa: F401,F403\n" for m in modules)
    parts = ['"""My exercise solutions, collected from my workbooks by write_components."""\n' + imports, *cells]
    path = pathlib.Path(path)
    path.write_text("\n\n\n".join(parts) + "\n")
    print(f"Wrote {path}: {len(kept)} cell(s) with your code" + (f" ({', '.join(kept)})" if kept else "")
          + (f"; left out {len(skipped)} with blanks still to fill" if skipped else "") + ".")
    return path


def train(components: str | pathlib.Path, config: Config, logdir: str | pathlib.Path, progress: bool = True):
    """Check the components file's functions, then train `config` in `logdir` with them, exactly
    as `dreamer-train --components FILE` does. Returns the eval rows."""
    return Trainer(config, logdir, progress, components, check_components).run()

