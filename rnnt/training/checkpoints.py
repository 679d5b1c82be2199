"""Atomic, resumable checkpoints of model, optimizer, step and data position.

`tf.train.CheckpointManager` writes the data files first and then replaces the small `checkpoint` index
file atomically, so a run killed at any moment (even by SIGKILL) still points at its last complete checkpoint.
Under MultiWorkerMirroredStrategy every worker must save (saving is collective); only the chief's copy is kept.
"""

from __future__ import annotations

import os
import shutil

import tensorflow as tf


class CheckpointKeeper:
    """Saves and restores a `tf.train.Checkpoint` under `run_dir/checkpoints`."""

    def __init__(self, checkpoint: tf.train.Checkpoint, run_dir: str, *, keep: int, chief: bool, worker: int = 0):
        self.chief = chief
        directory = os.path.join(run_dir, "checkpoints")
        if not chief:
            directory = os.path.join(run_dir, f".worker{worker}-checkpoints")
        self.directory = directory
        self.manager = tf.train.CheckpointManager(checkpoint, directory, max_to_keep=keep)
        self.checkpoint = checkpoint
        self.chief_manager = self.manager
        if not chief:  # read from the chief's folder, write to our own scratch folder
            self.chief_manager = tf.train.CheckpointManager(checkpoint, os.path.join(run_dir, "checkpoints"), keep)

    @property
    def latest(self) -> str | None:
        return self.chief_manager.latest_checkpoint

    def restore_latest(self) -> str | None:
        """Restore the newest complete checkpoint; returns its path or None for a fresh run."""
        path = self.latest
        if path:
            self.checkpoint.restore(path).assert_existing_objects_matched()
        return path

    def save(self, step: int) -> str:
        path = self.manager.save(checkpoint_number=step)
        if not self.chief:
            shutil.rmtree(self.directory, ignore_errors=True)
        return path
