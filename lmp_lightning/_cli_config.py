"""The ``config.yaml`` writer of ``lmp-seg fit``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.cli import SaveConfigCallback

from lmp_lightning.callbacks import run_dir
from lmp_lightning.errors import InputError

__all__ = ["KeepConfigCallback"]


class KeepConfigCallback(SaveConfigCallback):
    """Lightning's ``config.yaml`` writer, writing into the run's own folder
    (:func:`~lmp_lightning.callbacks.run_dir`: beside a W&B run's checkpoints, not into the
    shared ``save_dir``), whose refusal to replace an earlier run's config is one line that
    says what to do (Lightning's own is a 30-line traceback).

    Built on Lightning's public hooks: Lightning's own write into the logger's folder is
    turned off (``save_to_log_dir``), :meth:`setup` finds the run's folder and refuses an
    earlier run's config on every process, and :meth:`save_config` (which Lightning calls on
    the first process) writes the file.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.to_run_dir, self.save_to_log_dir = self.save_to_log_dir, False
        self.path: Path | None = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if not self.already_saved and self.to_run_dir:
            folder = run_dir(trainer)  # on every process: it may broadcast the run's version
            self.path = folder / self.config_filename
            exists = trainer.is_global_zero and self.path.is_file() and not self.overwrite
            if trainer.strategy.broadcast(exists):
                raise InputError(
                    f"{folder} already holds the config.yaml of an earlier run; pick another "
                    "--trainer.default_root_dir, or keep a logger (it writes every run into its "
                    "own folder)"
                )
        super().setup(trainer, pl_module, stage)

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.parser.save(
            self.config,
            str(self.path),
            skip_none=False,  # every value, None included: the run can be repeated
            overwrite=self.overwrite,
            multifile=self.multifile,
        )
