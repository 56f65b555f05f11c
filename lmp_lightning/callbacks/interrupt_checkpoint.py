"""``last.ckpt`` when a fit is interrupted, and the exit status that says so."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.exceptions import SIGTERMException

__all__ = ["InterruptCheckpoint"]


class InterruptCheckpoint(Callback):
    """On SIGTERM or Ctrl-C during ``fit``, writes ``last.ckpt`` for every ``ModelCheckpoint``
    with ``save_last`` (at the step reached, so the run resumes mid-epoch) and records the exit
    status of an interrupted command in :attr:`status`: ``128 + signal`` (143 for SIGTERM, 130
    for Ctrl-C). ``lmp-seg`` adds it to every fit and exits with that status.

    Lightning itself ends a SIGTERM'd fit like a finished one (exit status 0) and a Ctrl-C'd one
    with status 1.

    Ctrl-C is taken at the end of the current training or validation batch, as Lightning takes
    SIGTERM (every process of a distributed run stops at the same batch), not wherever the signal
    lands: a ``KeyboardInterrupt`` raised inside a checkpoint write could leave the fit hanging.
    A second Ctrl-C stops at once.
    """

    def __init__(self) -> None:
        self.status: int | None = None
        self._requested = False
        self._previous: Any = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._requested = False
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)

    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self._requested:  # the second Ctrl-C: at once
            self._restore()
            raise KeyboardInterrupt
        self._requested = True
        rank_zero_info("\nCtrl-C: stopping after this batch with last.ckpt (again: at once)")

    def _stop_if_requested(self, trainer: L.Trainer) -> None:
        if trainer.strategy.reduce_boolean_decision(self._requested, all=False):
            self._requested = True
            raise KeyboardInterrupt

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        self._stop_if_requested(trainer)

    def on_validation_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            self._stop_if_requested(trainer)

    def _restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._restore()

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self._restore()
        if isinstance(exception, SIGTERMException):
            self.status = 128 + signal.SIGTERM
        elif isinstance(exception, KeyboardInterrupt):
            self.status = 128 + signal.SIGINT
        else:
            return
        if trainer.state.fn != TrainerFn.FITTING:
            return
        for callback in trainer.checkpoint_callbacks:
            dirpath: Any = getattr(callback, "dirpath", None)
            if getattr(callback, "save_last", False) and dirpath:
                name = f"{callback.CHECKPOINT_NAME_LAST}{callback.FILE_EXTENSION}"  # type: ignore[attr-defined]
                path = Path(dirpath) / name
                trainer.save_checkpoint(path)
                rank_zero_info(f"Interrupted at step {trainer.global_step}: saved {path}")
