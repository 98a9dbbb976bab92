# %%
# On Colab, install the course library (the base package: Pendulum needs no MuJoCo); anywhere
# else this cell does nothing. It is the same in every lesson and workbook: its one source is
# tools/colab_cell.py, which `python tools/make_workbooks.py` copies into each lesson (a test
# checks). A failed install prints what to do instead of stopping the lesson here.
import sys

if "google.colab" in sys.modules:
    import importlib
    import importlib.util
    import subprocess

    SOURCE = "git+https://github.com/dreamer-course/dreamer-course"  # the course repository
    if importlib.util.find_spec("dreamer_lib") is None:  # not installed in this runtime yet
        pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"dreamer-course @ {SOURCE}"],
                             capture_output=True, text=True)
        importlib.invalidate_caches()
        if pip.returncode == 0:
            print(f"Installed the course library from {SOURCE}.")
        else:
            said = (pip.stderr or pip.stdout).strip().splitlines()
            print(f"Could not install the course library from {SOURCE} (pip: {said[-1] if said else pip.returncode}). "
                  "Fix: check that this runtime is online, then run this cell again. Or install it another way "
                  "and run this cell again (it then does nothing): download the repository as a zip (on GitHub: "
                  "Code > Download ZIP), upload it in Colab's Files panel and run "
                  "`!unzip -q dreamer-course-main.zip && pip install -q ./dreamer-course-main`; or, with a copy "
                  "of the repository on Google Drive or another local path, `!pip install -q /path/to/dreamer-course`.")

# %% [markdown]
# # Lesson 6: Dreamer end to end
#
# *Time to run:* ci: 1 min, cpu (2 cores): 23 min, gpu: not measured yet (cpu: an Intel Xeon) · Words: the
# [glossary](GLOSSARY.md).
#
# Every part exists now: the env and its pixel wrapper (lesson 0), the replay buffer, the
# encoder and decoder, the RSSM and its losses, the actor and critic (lesson 5). This lesson
# closes the loop of **algorithm 1** of the paper and trains DreamerV1 on pixel Pendulum with
# `dreamer_lib.train.Trainer`, the same loop as the `dreamer-train` command. You will see:
#
# - the schedule: random prefill, then 100 updates per 1,000 env frames, and exploration noise;
# - the three counters that a Dreamer run keeps apart: env frames, agent steps, updates;
# - the run folder the trainer writes, and how a stopped run resumes;
# - the learning curve, an evaluation episode of the trained policy, and the world model's
#   open-loop prediction;
# - how to run the same code on a DeepMind Control task or CarRacing on a GPU.
#
# Where this sits: all of it, **env → replay buffer → world model → imagination →
# actor-critic → env**, in one loop.

# %%
from dreamer_lib.course.scale import setup

# Seed 3 is one of the five seeds of the preset's benchmark in docs/results.md, trained there on 1
# thread: on 2 threads the sums' last bits differ, so this run's curve is its own.
scale = setup("Lesson 6: Dreamer end to end", seed=3)

# %% [markdown]
# ## 1. Algorithm 1, as the library runs it
#
# The paper's algorithm 1 alternates three phases:
#
# 1. **Dynamics learning**: sample a batch of $B = 50$ sequences of $L = 50$ steps from the
#    replay buffer, update the world model (reconstruction, reward, KL with free nats).
# 2. **Behaviour learning**: from every posterior state of that batch ($50 \times 50 = 2{,}500$
#    starts) imagine $H = 15$ steps, update the actor on the $\lambda$-returns and the critic on
#    their detached copy (lesson 5). Phases 1 and 2 are one `agent.update(batch)`; the paper does
#    $C = 100$ of them per collection phase.
# 3. **Environment interaction**: act with the actor on the real env, filtering each new frame
#    into the latent state with the posterior, adding exploration noise; store the episode.
#
# `Trainer` follows the official code's schedule, counted in **env frames**: first
# `prefill_frames` of uniformly random actions (5,000 at paper size, i.e. 5 episodes of DMC), then
# `train_updates` updates right away (the official code's pretraining) and `train_updates` more
# every `train_every` frames. With action repeat 2 and 1,000-frame DMC episodes that is the
# paper's "C = 100 updates per episode".
#
# Three settings of the `cpu` preset are not DreamerV1's (the paper preset keeps all three;
# docs/provenance.md has the measurements):
#
# - a small bonus for the actor's entropy, `actor_entropy` = 0.003 (DreamerV2 has one). Without
#   it, on Pendulum the tanh-Gaussian actor can settle within a few hundred updates at one torque
#   limit: its pre-tanh mean near 5, where tanh is flat, so the return's gradient (~1e-4) can no
#   longer move it. Lesson 7 shows that failure.
# - half the paper's learning rate for the actor, `actor_lr` = 4e-5. With the paper's rate (and
#   a bonus of 0.01), 1 of 5 seeds learned the swing-up and lost it again (-186 at 35k frames,
#   -703 at 50k); with both changed, 5 of 5 held it.
# - imagination from every 4th posterior state of a window (`imagine_every` = 4), not from all
#   of them: neighbouring states are much alike, and an update costs 0.71x.
#
# This scale's settings:

# %%
import inspect

import matplotlib.pyplot as plt
import numpy as np

from dreamer_lib.config import Config, make_config
from dreamer_lib.train import Trainer

config = scale.config.replace(total_frames=scale.pick(gpu=100_000, cpu=50_000, ci=800))
for key in ("env", "action_repeat", "total_frames", "prefill_frames", "train_every", "train_updates", "batch_size", "seq_len",
            "horizon", "imagine_every", "expl_noise", "actor_lr", "actor_entropy", "eval_every",
            "eval_episodes"):
    print(f"{key:>15} = {getattr(config, key)}")

# %% [markdown]
# ### Exercise 6.1: the schedule
#
# *(★☆☆, ~10 min)*
#
# Write `updates_due(env_frames, config)`: how many updates the schedule owes once `env_frames`
# frames have been collected. None during the random prefill; `train_updates` as soon as
# `prefill_frames` frames are in; then `train_updates` more each time another `train_every` frames
# have come in. Before it collects each episode the trainer runs the updates owed minus those
# done, so the count depends on the frames alone: a resumed run owes exactly what a run that
# never stopped would.

# %%
# @save dreamer_lib.config
def updates_due(env_frames: int, config: Config) -> int:
    """Updates the schedule asks for by this many env frames: train_updates once the prefill is
    done (the official code's pretraining), then train_updates more every train_every frames."""
    # BEGIN SOLUTION 6.1: 0 during the prefill, then train_updates at once and train_updates per train_every frames
    if env_frames < config.prefill_frames:
        return 0
    return config.train_updates * (1 + (env_frames - config.prefill_frames) // config.train_every)
    # END SOLUTION


# %%
from dreamer_lib.course.checks.train import check_updates_due

check_updates_due(updates_due)

# %% [markdown]
# ## 2. Three counters
#
# A Dreamer run counts three different things, and papers and ports mix them up:
#
# - **env frames**: simulator steps. With action repeat 2, one decision of the agent plays the
#   same action for 2 frames and sums their rewards. The paper's x-axes ("environment steps")
#   and `--total-frames` count these.
# - **agent steps**: decisions, the rows of a stored episode (minus the reset row): env frames
#   / action repeat.
# - **updates**: gradient steps, each on a whole batch.
#
# At paper settings:

# %% [markdown]
# **Predict before you run.** At paper settings (prefill 5,000 env frames, then 100 updates per
# 1,000 frames, batches of 50 x 50 steps, action repeat 2), how many updates does the schedule owe
# at 4,998, 5,000 and 6,000 env frames? And by 1,000,000 env frames, how many times on average has
# each collected agent step been in a training batch: about 5, 50 or 500? Write down your guess,
# then run the next cell.

# %%
# NBVAL_CHECK_OUTPUT
paper = make_config("paper")
print(f"{'env frames':>10} | {'agent steps':>11} | {'updates':>7} | times each collected step was trained on")
for frames in (0, 4_998, 5_000, 5_998, 6_000, 100_000, 1_000_000):
    steps, updates = frames // paper.action_repeat, updates_due(frames, paper)
    replay = updates * paper.batch_size * paper.seq_len / max(steps, 1)  # B x L steps per update
    print(f"{frames:>10,} | {steps:>11,} | {updates:>7,} | {replay:.0f}")

# %% [markdown]
# So one million env frames (the paper's budget per DMC task) are half a million decisions and
# about 100,000 updates, and on average every collected step lands in a training batch about
# 500 times (each time also as the start of a 15-step imagination). Dreamer's sample efficiency
# comes from this reuse of real data, and its cost from the same place: the updates, not the
# env, dominate the wall-clock time.
#
# **Exploration.** While collecting, the agent samples from its actor *and* adds Gaussian noise
# of std `expl_noise` = 0.3 (clipped to $[-1, 1]$), as the paper's Dreamer on continuous control;
# evaluation uses the actor's mode without noise:

# %%
from dreamer_lib.agent import DreamerV1

source = inspect.getsource(DreamerV1.policy)
print(source[source.index("        latent, prev_action"):])

# %% [markdown]
# ## 3. Train
#
# `Trainer(config, logdir)` builds the envs (one for training, one with another seed for
# evaluation), the buffer and the agent, and **resumes automatically** if `logdir` already holds
# a run with the same architecture: it reloads the latest checkpoint (weights, optimisers,
# counters and every random generator) and the episodes it counts, so you can interrupt this cell
# (or lose the kernel) and run it again, and the run continues exactly as if it had never stopped. The progress bar shows
# env frames, the last training episode's return, the updates so far and the latest evaluation.
#
# On the CPU scale this cell trains 50,000 env frames with 5,000 updates in fp32: 21 minutes on
# a 2-core Xeon in the committed run (the cell prints its own time); at
# the ci scale it only proves that the loop runs. The run folder is `lesson6` (at the ci scale
# `lesson6-ci`, so that a quick check never mixes with a real run) inside `runs_dir()`, the one
# folder for the course's runs: `notebooks/runs`, found the same from a lesson and from its
# workbook, so lesson 7 and its workbook find this run (`DREAMER_RUNS=PATH` moves it).

# %%
from dreamer_lib.course.scale import runs_dir

RUN = runs_dir() / ("lesson6" if scale.name != "ci" else "lesson6-ci")
trainer = Trainer(config, RUN, progress=True)
print(f"run folder {RUN} | device {trainer.agent.device} | precision {trainer.agent.precision} | "
      f"{'fast' if config.fast else 'plain'} update path")
eval_rows = trainer.run()
print(f"{trainer.env_frames} env frames = {trainer.agent_steps} agent steps; {trainer.updates} updates; "
      f"{trainer.wall_s / 60:.1f} min of training in total")

# %% [markdown]
# ## 4. The run folder
#
# Everything a run produced lives in its folder, written as it goes (episodes as they finish,
# the checkpoint before every episode, atomically, so a kill never leaves half a file):

# %%
for path in sorted(RUN.iterdir()):
    if path.is_dir():
        files = sorted(path.iterdir())
        print(f"{path.name + '/':<20} {len(files)} files, e.g. {files[0].name}  (one .npz per episode: index-length)")
    else:
        print(f"{path.name:<20} {path.stat().st_size / 1e3:9.1f} kB")

# %% [markdown]
# - `config.json`: every setting of the run (a checkpoint only loads into a model of the same
#   sizes; `dreamer-train --resume RUN` and `dreamer-eval RUN` read it);
# - `episodes/`: the replay data, the record from which a run can always be resumed;
# - `checkpoint.pt`: the agent's and optimisers' weights, the counters, every random generator
#   and the log rows so far: what an exact resume needs;
# - `metrics.csv`: one row per training phase (means over its updates); `eval.csv`: one row
#   per evaluation (mean and std of the policy's mode over `eval_episodes` episodes);
# - `events.out.tfevents.*`: the same numbers and pictures for TensorBoard
#   (`tensorboard --logdir notebooks/runs`);
# - `eval.gif`, `openl.gif`, `openl.png`, `learning_curve.png`: the pictures below;
# - `.lock` and `running.json`: one trainer at a time per folder; the lock goes with the process
#   that held it, and `running.json` names that process in the message a second trainer gets.
#
# The last training phase, with all three counters:

# %%
from dreamer_lib.run_folder import CSVLog

metrics = CSVLog(RUN / "metrics.csv").read()
last = metrics[-1]
for key in ("env_frames", "agent_steps", "updates", "wall_s", "train_return", "model_loss", "image_loss", "kl",
            "actor_loss", "critic_loss", "imagined_return"):
    print(f"{key:>16} = {last[key]}")

# %% [markdown]
# ## 5. Did it learn?
#
# The learning curve from `eval.csv`. Pendulum's return per episode (100 decisions, 200 frames)
# lies between about -1,700 (random flailing, or hanging still upside down) and about -150
# (swing up fast, balance). The dashed line is the mean return of the random prefill
# episodes of this very run. Evaluations are noisy: a policy that swings up from most starting
# angles still loses hundreds on an unlucky one, so read the trend, not one point. In the
# committed cpu-scale run (seed 3, 10 evaluation episodes each) the mean climbs from -1,379 after
# the prefill to -429 at 25,000 frames and stays between -168 and -291 from 30,000 on (-193 at
# 50,000).

# %%
from dreamer_lib import viz
from dreamer_lib.course import pictures

random_returns, frames_so_far = [], 0
for episode in trainer.buffer.episodes:  # the episodes collected before prefill_frames were random
    if frames_so_far >= config.prefill_frames:
        break
    random_returns.append(episode["reward"].sum())
    frames_so_far += (len(episode["image"]) - 1) * config.action_repeat
random_return = float(np.mean(random_returns))
figure = viz.learning_curve(eval_rows, reference={"x": [0, config.total_frames], "y": [random_return] * 2,
                                                  "label": "random actions (prefill episodes)"})
plt.show()

# %% [markdown]
# The training metrics of every phase, against updates. Expect: the image loss falling fast and
# then slowly (it includes the Gaussian's constant, 11,291 nats for 64 x 64 x 3 pixels), the KL
# settling near the free-nats line of 3 once the model is fitted (2.7 to 2.9 from 1,000 updates on
# in the committed run), the imagined return rising as the actor finds better behaviour in the
# world model.

# %%
figure = pictures.metrics_grid(metrics, keys=("image_loss", "reward_loss", "kl", "imagined_return", "actor_loss",
                                              "critic_loss"))
plt.show()

# %% [markdown]
# An evaluation episode of the latest policy (the mode of the actor, no exploration noise), as
# the trainer saved it in `eval.gif`:

# %%
from IPython.display import HTML, Image, display
from PIL import Image as PILImage
from PIL import ImageSequence

with PILImage.open(RUN / "eval.gif") as gif:
    frames = np.stack([np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(gif)])
print("eval episode:", frames.shape, "(frames upscaled x2 in the GIF)")
HTML(pictures.animation_html(frames[:, ::2, ::2], fps=10, scale=2))  # the 64x64 frames, shown x2

# %% [markdown]
# In the committed cpu-scale run this episode swings the pendulum up within about 15 steps and
# then holds it upright to the end. It is one episode of ten: the band around the learning curve
# shows how far the others of the same evaluation spread. (`dreamer-eval` in section 6 plays two
# more: -515 and -243 in the committed run; its GIF, of the first, needs several swings, about
# half the episode, before the pole stays up.)
#
# And the world model's **open-loop prediction** (`openl.png`, the official code's "openl"
# summary): for sequences from the replay buffer, the model sees 5 real frames (posterior), then
# predicts the rest with the prior alone, given the real actions. Rows: truth, model, error
# (grey = no error). In the committed cpu-scale run the imagined pendulum is at about the right
# angle at t=5 and t=10, some 45 degrees off at t=15 and out of phase from t=20 on, though it
# keeps swinging like a pendulum: errors grow with the distance from the last observation.

# %%
display(Image(filename=RUN / "openl.png"))

# %% [markdown]
# ## 6. The same code on a GPU, DMC and CarRacing
#
# The trainer is also a command. On a machine with a CUDA GPU the paper's settings are the
# default preset, and the lesson's loop is exactly this:
#
# ```bash
# pip install -e ".[dmc]"                 # DeepMind Control (MuJoCo); for CarRacing: pip install -e ".[box2d]"
# export MUJOCO_GL=egl                    # headless rendering on a GPU machine (osmesa on a CPU-only one)
# dreamer-train --env dmc_walker_walk --preset paper --total-frames 1000000
# dreamer-train --env CarRacing-v3 --preset paper          # any gymnasium env with Box actions and pixels
# dreamer-train --resume runs/dmc_walker_walk-paper-seed0  # continue a stopped run
# dreamer-eval runs/dmc_walker_walk-paper-seed0            # play the checkpoint's policy, write a GIF
# ```
#
# The paper's DMC curves count env frames (action repeat 2); the official code's walker walk
# reaches about 950 after $10^6$ frames, several hours on one GPU. Compare runs at equal env
# frames, never at equal updates or agent steps.
#
# `dreamer-eval` is a plain function too; here it is on this lesson's run (two episodes with the
# actor's mode):

# %%
from dreamer_lib.cli import evaluate as dreamer_eval

exit_code = dreamer_eval([str(RUN), "--episodes", "2"])

# %% [markdown]
# ## 7. Train with your own code
#
# Each `# @save` cell of the course (lessons 1, 3, 5 and this one) is a piece of the trainer. The
# trainer can run yours in its place: `write_components` copies the `@save` cells of the
# notebooks in the current folder into one Python file (in your workbooks folder: the code you
# wrote; here in the lessons: the solutions), leaving out any cell with a blank still to fill,
# and `dreamer-train --components FILE` (or `components.train(FILE, config, folder)` from Python)
# runs each function's exercise check first, refuses a wrong one with that check's message, and
# then trains with yours in place of the library's. The run folder keeps a copy of the file
# (`components.py`), and a resume uses it again.
#
# A short run with the file, next to this lesson's run over the same first phases: same seed,
# same settings, so the metrics agree as far as the two implementations agree (the solutions here
# are the library's code, so they should agree exactly):

# %%
import pathlib

from dreamer_lib.course import components

mine = components.write_components(RUN.parent / "my_dreamer.py", sorted(pathlib.Path(".").glob("0[0-9]_*.ipynb")))
MINE = RUN.parent / f"{RUN.name}-mine"
short = config.replace(total_frames=scale.pick(gpu=12_000, cpu=3_000, ci=800))
components.train(mine, short, MINE, progress=True)
theirs = {row["env_frames"]: row for row in CSVLog(RUN / "metrics.csv").read()}
print(f"\n{'env frames':>10} | {'model_loss: library':>19} {'yours':>10} | {'actor_loss: library':>19} {'yours':>10}")
for row in CSVLog(MINE / "metrics.csv").read():
    library = theirs.get(row["env_frames"], {})
    print(f"{row['env_frames']:>10} | {library.get('model_loss', '-'):>19} {row['model_loss']:>10} | "
          f"{library.get('actor_loss', '-'):>19} {row['actor_loss']:>10}")

# %% [markdown]
# And a file with a classic mistake, the lambda-return bootstrapped with `values[-1]` (that is
# $v_{H-1}$, the value of the last imagined state, not of the state after it): the trainer does
# not start, and the message is the exercise check's.

# %%
buggy = RUN.parent / "buggy_dreamer.py"
buggy.write_text('''import torch


def compute_lambda_returns(rewards, values, discounts, bootstrap, lambda_=0.95):
    next_values = torch.cat([values[1:], values[-1:]], 0)  # the bug: the last v_{t+1} is values[-1]
    returns, last = [], values[-1]
    for t in reversed(range(rewards.shape[0])):
        last = rewards[t] + discounts[t] * ((1 - lambda_) * next_values[t] + lambda_ * last)
        returns.append(last)
    return torch.stack(returns[::-1])
''')
try:
    components.train(buggy, short, RUN.parent / f"{RUN.name}-buggy", progress=True)
except components.ComponentRejected as refused:
    print(f"Refused: {refused}")
print("run folder created:", (RUN.parent / f"{RUN.name}-buggy").exists())

# %% [markdown]
# ## Summary
#
# - Algorithm 1 = collect with the policy (plus noise), replay batches into the world model and
#   into imagination, 100 updates per 1,000 env frames after a random prefill.
# - Keep env frames, agent steps and updates apart; the paper's axes are env frames.
# - A run folder is self-contained and resumable: config, episodes, checkpoint, logs, pictures.
# - The schedule (exercise 6.1) owes updates by env frames alone, which is what makes a resume exact.
# - `dreamer-train --components FILE` trains the real agent with your own functions, each checked first.
# - Lesson 7 opens such a run folder in the imagination debugger and breaks training on purpose.

# %%
print(f"Lesson 6 ran in {scale.elapsed()} at scale {scale.name}")
