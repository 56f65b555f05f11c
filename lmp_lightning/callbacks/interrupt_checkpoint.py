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

    The signal is taken at the end of the current training batch (every process of a distributed
    run stops at the same batch), not wherever it lands: a ``KeyboardInterrupt`` raised inside a
    checkpoint write could leave the fit hanging. A signal that arrives during a validation of
    the fit is taken once that validation and its checkpoints are done (at the end of the next
    training batch): stopping inside it would lose the epoch's validation, which a resumed fit
    does not run again. A signal that arrives after the last training batch lets the fit finish
    and still gives its status. A second signal stops at once.
    """

    def __init__(self) -> None:
        self.status: int | None = None
        self._signum: int | None = None
        self._previous: dict[int, Any] = {}

    def _install(self, signum: int) -> None:
        if threading.current_thread() is threading.main_thread():
            self._previous.setdefault(signum, signal.getsignal(signum))
            signal.signal(signum, self._on_signal)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._signum = None
        self._install(signal.SIGINT)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning installs its own SIGTERM handler after on_fit_start; it stops inside a
        # validation
        self._install(signal.SIGTERM)

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self._signum is not None:  # the second signal: at once
            self._restore()
            raise KeyboardInterrupt
        self._signum = signum
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        rank_zero_info(
            f"\n{name}: stopping after this training batch with last.ckpt (again: at once)"
        )

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        requested = self._signum is not None
        if trainer.strategy.reduce_boolean_decision(requested, all=False):
            if self._signum is None:  # another process of the run was signalled
                self._signum = signal.SIGTERM
            raise KeyboardInterrupt

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._signum is not None:  # signalled after the last batch: the fit finished
            self.status = 128 + self._signum

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._restore()

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        self._restore()
        if isinstance(exception, SIGTERMException):
            self.status = 128 + signal.SIGTERM
        elif isinstance(exception, KeyboardInterrupt):
            self.status = 128 + (self._signum or signal.SIGINT)
        else:
            return
        if trainer.state.fn != TrainerFn.FITTING:
            return
        for callback in trainer.checkpoint_callbacks:
            dirpath: Any = getattr(callback, "dirpath", None)
            if getattr(callback, "save_last", False) and dirpath:
                name = f"{callback.CHECKPOINT_NAME_LAST}{callback.FILE_EXTENSION}"  # type: ignore[attr-defined]
                path = Path(dirpath) / name
                trainer.save_checkpoint(path, weights_only=False)  # a whole one, to resume
                rank_zero_info(f"Interrupted at step {trainer.global_step}: saved {path}")
