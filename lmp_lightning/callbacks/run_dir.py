"""The folder that holds one run's files, whichever logger the run has."""

from __future__ import annotations

from pathlib import Path

import lightning as L

__all__ = ["run_dir"]


def run_dir(trainer: L.Trainer) -> Path:
    """The run's own folder: the logger's ``log_dir`` (TensorBoard, CSV: ``version_N``), or,
    for a logger without one (W&B), ``<save_dir>/<name>/<version>`` as Lightning's
    ``ModelCheckpoint`` lays it out, so that the config, results and figures of a run sit beside
    its checkpoints and a second run in the same place writes into another folder; without a
    logger, ``default_root_dir``.

    Example:
        >>> from lightning import Trainer
        >>> trainer = Trainer(logger=False, default_root_dir="runs/x", enable_progress_bar=False)
        >>> run_dir(trainer)
        PosixPath('runs/x')
    """
    logger = trainer.logger
    if logger is None:
        return Path(trainer.default_root_dir)
    log_dir = getattr(logger, "log_dir", None)
    if log_dir is not None:
        return Path(log_dir)
    if trainer.is_global_zero:  # W&B: starting the run gives it its id, the version
        getattr(logger, "experiment", None)
    version = trainer.strategy.broadcast(logger.version)
    version = version if isinstance(version, str) else f"version_{version}"
    save_dir = logger.save_dir if logger.save_dir is not None else trainer.default_root_dir
    return Path(save_dir) / str(logger.name) / version
