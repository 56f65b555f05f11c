"""``last.ckpt`` when a fit is interrupted, and the exit status that says so."""

from __future__ import annotations

import signal
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
    """

    def __init__(self) -> None:
        self.status: int | None = None

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
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
