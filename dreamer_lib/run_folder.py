"""The run folder's files, apart from the training loop: CSV logs that a resume rewrites
exactly, TensorBoard events, the one-writer lock, and a folder that is checked before use."""
from __future__ import annotations

import csv
import datetime
import json
import os
import pathlib
import shutil
import socket
import tempfile

import numpy as np
from filelock import FileLock, Timeout


class CSVLog:
    """The rows of one CSV file, kept in memory too, so a checkpoint can hold them and a resume
    can rewrite the file exactly: every row once, whatever the kills."""

    def __init__(self, path: pathlib.Path):
        self.path = path
        self.rows = self.read()

    def write(self, row: dict) -> None:
        new = not self.path.exists()
        with self.path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow(row)
        self.rows.append({k: str(v) for k, v in row.items()})

    def read(self) -> list[dict]:
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
        # purge_step drops events a killed run wrote after its checkpoint; the resume rewrites them.
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
