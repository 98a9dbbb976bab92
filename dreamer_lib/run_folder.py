"""The run folder, apart from the training loop: a folder checked before use, the one-writer
lock, the saved config and what a resume changes, checkpoints that catch a damaged file, CSV
logs that a resume rewrites exactly, TensorBoard events, and the messages of the faults that
end a run.

A run folder holds: config.json, episodes/ (every training episode, written as it finishes),
checkpoint.pt, metrics.csv (one row per training phase), eval.csv (one row per evaluation),
TensorBoard events (when the tensorboard package is installed), eval.gif, openl.gif and
openl.png (open-loop prediction), learning_curve.png, changes.txt (settings changed on resume),
and components.py (a learner's own parts, when the run was trained with them).
"""
from __future__ import annotations

import csv
import dataclasses
import datetime
import errno
import hashlib
import importlib.metadata
import io
import json
import os
import pathlib
import shutil
import socket
import subprocess
import tempfile

import numpy as np
import torch
from filelock import FileLock, Timeout

from dreamer_lib.config import ARCHITECTURE, Config

# Settings a resumed run cannot change: the weights, episodes and random streams depend on them.
FIXED_ON_RESUME = ARCHITECTURE + ("env", "action_repeat", "time_limit", "seed", "preset")
CHECKSUM = b"\ndreamer-sha256:"  # a checkpoint file ends with this and the sha256 of what comes before


class TrainingStopped(Exception):
    """A fault that ends the run: non-finite values, a full disk. The message says what and when."""


def write_checkpoint(path: pathlib.Path, state: dict) -> None:
    """Serialised in memory (torch.save reports a full disk as a RuntimeError), followed by its
    checksum, written to a temporary file and renamed: a kill mid-write keeps the previous one."""
    data = io.BytesIO()
    torch.save(state, data)
    payload = data.getvalue()
    temporary = path.with_name(path.name + ".tmp")
    try:
        with temporary.open("wb") as f:
            f.write(payload + CHECKSUM + hashlib.sha256(payload).hexdigest().encode())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


RUN_ADVICE = ("The episodes in its run folder are intact: move the checkpoint away and train a new run from "
              "another folder (dreamer-train --logdir NEW), or restore the file from a backup.")


def read_checkpoint(path: pathlib.Path, map_location="cpu", advice: str = RUN_ADVICE) -> dict:
    """A checkpoint written by write_checkpoint, its checksum verified (files from before checksums
    were added load unverified). `advice`: the way back that a message about a damaged file gives."""
    try:
        payload = path.read_bytes()
    except OSError as error:
        raise ValueError(f"Could not read the checkpoint {path} ({error.strerror or error}).") from None
    payload, found, digest = payload.rpartition(CHECKSUM)
    if not found:
        payload = digest
    elif hashlib.sha256(payload).hexdigest().encode() != digest:
        raise ValueError(f"The checkpoint {path} is damaged: its contents no longer match the checksum written "
                         f"with it (a disk or copy error changed the file). {advice}")
    try:
        return torch.load(io.BytesIO(payload), map_location=map_location, weights_only=False)
    except Exception as error:
        raise ValueError(f"Could not read the checkpoint {path} ({type(error).__name__}: {error}). The file is "
                         f"damaged or not a dreamer_lib checkpoint. {advice}") from None


def config_changes(logdir: pathlib.Path, config: Config) -> str:
    """What `config` changes in the run saved in `logdir` ('' for a new run or no change). A run
    keeps its architecture, env and seed; refuses a change to those, naming each."""
    path = logdir / "config.json"
    if not path.exists():
        return ""
    saved = Config.from_json(path.read_text(), source=path)
    changed = {f.name: (getattr(saved, f.name), getattr(config, f.name)) for f in dataclasses.fields(Config)
               if getattr(saved, f.name) != getattr(config, f.name)}
    fixed = sorted(set(changed) & set(FIXED_ON_RESUME))
    if fixed:
        details = ", ".join(f"{k} {changed[k][0]} -> {changed[k][1]}" for k in fixed)
        raise ValueError(f"{logdir} holds a run whose {', '.join(fixed)} cannot change ({details}): its "
                         "checkpoint, episodes and random streams depend on them. Resume it without those "
                         "flags (dreamer-train --resume RUN), or start a new run with another --logdir.")
    return ", ".join(f"{k} {a} -> {b}" for k, (a, b) in changed.items())


def log_changes(logdir: pathlib.Path, note: str) -> None:
    print(f"Settings changed on resume (applied, and logged in changes.txt): {note}")
    with (logdir / "changes.txt").open("a") as f:
        f.write(f"{datetime.datetime.now().isoformat(timespec='seconds')}: {note}\n")


def write_fault(logdir: pathlib.Path, error: OSError) -> TrainingStopped:
    """The message for a failed read or write in the run folder, naming the file and the way back."""
    where = f"{error.strerror or error}{': ' + str(error.filename) if error.filename else ''}"
    resume = f"then resume with dreamer-train --resume {logdir}; the checkpoint and episodes written before are intact."
    if error.errno == errno.ENOSPC:
        return TrainingStopped(f"The disk is full ({where}). Free some space, {resume}")
    if error.errno == errno.ENOENT:
        return TrainingStopped(f"A file or folder of the run vanished while training ({where}): was {logdir} or "
                               "its episodes/ moved or deleted? Put it back and resume, or start a new run.")
    return TrainingStopped(f"Could not write to {logdir} ({where}). Make the folder writable, {resume}")


class CSVLog:
    """The rows of one CSV file, kept in memory too, so a checkpoint can hold them and a resume
    can rewrite the file exactly: every row once, whatever the kills."""

    def __init__(self, path: pathlib.Path, rows: list[dict] = ()):
        self.path = path
        self.rows = [dict(r) for r in rows]

    def write(self, row: dict) -> None:
        new = not self.path.exists()
        with self.path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)
        self.rows.append({k: str(v) for k, v in row.items()})

    def read(self) -> list[dict]:
        """The rows in the file (the run's own record is the checkpoint's: see reset)."""
        if not self.path.exists():
            return []
        with self.path.open() as f:
            return list(csv.DictReader(f))

    def reset(self, rows: list[dict]) -> None:
        """Rewrite the file with exactly these rows (a temporary file, then a rename)."""
        self.rows = [dict(r) for r in rows]
        if not rows:
            self.path.unlink(missing_ok=True)
            return
        temporary = self.path.with_suffix(".csv.tmp")
        with temporary.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        os.replace(temporary, self.path)


class TensorBoard:
    """Scalars and pictures for TensorBoard, written only where the tensorboard package exists."""

    def __init__(self, logdir: pathlib.Path, purge_step: int):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            self.writer = None
            return
        self.writer = SummaryWriter(str(logdir), purge_step=purge_step)

    def scalars(self, prefix: str, row: dict, step: int) -> None:
        if self.writer:
            for key, value in row.items():
                if isinstance(value, (int, float)) and key != "env_frames":
                    self.writer.add_scalar(f"{prefix}/{key}", value, step)

    def image(self, tag: str, image: np.ndarray, step: int) -> None:
        if self.writer:
            self.writer.add_image(tag, image, step, dataformats="HWC")

    def figure(self, tag: str, figure, step: int) -> None:
        if self.writer:
            self.writer.add_figure(tag, figure, step, close=False)

    def close(self) -> None:
        if self.writer:
            self.writer.close()


def prepare_run_folder(logdir: pathlib.Path) -> bool:
    """Create the run folder (and parents) if needed; True if it was created here. Clear errors
    for a path that is a file, lies under a file, or cannot be written."""
    if logdir.exists() and not logdir.is_dir():
        raise ValueError(f"The run folder {logdir} is a file, not a folder. Choose another --logdir.")
    for parent in logdir.parents:
        if parent.exists() and not parent.is_dir():
            raise ValueError(f"The run folder {logdir} would lie under {parent}, which is a file. Choose another --logdir.")
    created = not logdir.exists()
    try:
        logdir.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=logdir, prefix=".write-test-")
        probe.close()
    except OSError as error:
        if created:
            shutil.rmtree(logdir, ignore_errors=True)
        raise ValueError(f"Cannot write to the run folder {logdir} ({error.strerror}). Choose a --logdir on a "
                         "writable disk with free space.") from None
    return created


class RunFolder:
    """A run's folder, opened before anything is written into it: created if new, locked for one
    trainer, and checked against the config (a resume may change only some settings) and the
    parts (a run trained with a learner's components.py resumes with them). `accept` writes
    config.json, the components copy and changes.txt once the whole run is accepted; `abandon`
    undoes the opening, removing a folder that was created for a refused run."""

    def __init__(self, path: pathlib.Path, config: Config, source: pathlib.Path | None = None):
        self.path, self.created = path, prepare_run_folder(path)
        self.lock, self.tensorboard = RunLock(path), None
        self.lock.acquire()
        try:
            self.changes = config_changes(path, config)
            if (path / "components.py").exists() and source is None:
                raise ValueError(f"{path} was trained with your own code ({path / 'components.py'}), so it resumes "
                                 f"with it: dreamer-train --resume {path} loads and checks that file.")
        except BaseException:
            self.abandon()
            raise
        self.metrics, self.evals = CSVLog(path / "metrics.csv"), CSVLog(path / "eval.csv")

    def accept(self, config: Config, source: pathlib.Path | None) -> None:
        if source and source.resolve() != (self.path / "components.py").resolve():
            shutil.copyfile(source, self.path / "components.py")
        (self.path / "config.json").write_text(config.to_json())
        with (self.path / "code.txt").open("a") as f:  # one line per start or resume: which code trained
            f.write(f"{datetime.datetime.now().isoformat(timespec='seconds')}: {code_version()}\n")
        if self.changes:
            log_changes(self.path, self.changes)
        # purge_step drops the events a killed run wrote after its checkpoint; the resume rewrites them.
        logged = max((int(r["env_frames"]) for r in self.metrics.rows + self.evals.rows), default=-1)
        self.tensorboard = TensorBoard(self.path, purge_step=logged + 1)

    def abandon(self) -> None:
        self.lock.release()
        if self.created:
            shutil.rmtree(self.path, ignore_errors=True)

    def close(self) -> None:
        """Release the folder, so another trainer (a resume) may use it."""
        if self.tensorboard:
            self.tensorboard.close()
        self.lock.release()


def code_version() -> str:
    """The code that trains: the git commit of the checkout dreamer_lib runs from (and whether
    dreamer_lib has uncommitted changes there), or the installed package's version outside git."""
    library = pathlib.Path(__file__).parent

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(library), *args], capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()

    try:
        commit, changes = git("rev-parse", "HEAD"), git("status", "--porcelain", "--", ".")
    except (OSError, subprocess.SubprocessError):
        return f"dreamer-course {importlib.metadata.version('dreamer-course')} (not a git checkout)"
    return f"git {commit}" + (" with uncommitted changes to dreamer_lib" if changes else "") + f" ({library})"


class RunLock:
    """One writer per run folder. The lock is the OS's (flock): a killed trainer's lock goes with
    its process, so it never blocks a resume; running.json names the holder for the message."""

    def __init__(self, logdir: pathlib.Path):
        self.logdir, self.lock = logdir, FileLock(logdir / ".lock")

    def acquire(self) -> None:
        if self.lock.is_locked:
            return
        try:
            self.lock.acquire(timeout=0)
        except Timeout:
            raise ValueError(f"{self.logdir} is being trained by another process ({self.holder()}). One run folder "
                             "takes one trainer: wait for it to finish, stop it (kill -TERM PID: it saves and "
                             "exits), or choose another --logdir.") from None
        (self.logdir / "running.json").write_text(json.dumps(
            {"pid": os.getpid(), "host": socket.gethostname(), "since": datetime.datetime.now().isoformat()}))

    def holder(self) -> str:
        try:
            info = json.loads((self.logdir / "running.json").read_text())
            return f"pid {info['pid']} on {info['host']}, since {info['since'][:19]}"
        except (OSError, ValueError, KeyError):
            return "process unknown"

    def release(self) -> None:
        self.lock.release(force=True)
