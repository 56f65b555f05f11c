"""The exception for bad input or configuration found at any stage of a command."""

from __future__ import annotations

__all__ = ["InputError"]


class InputError(ValueError):
    """Bad input or configuration, found while parsing, building or running: a data file that
    cannot be read, a training set smaller than one batch, a checkpoint that disagrees with the
    typed flags. ``lmp-seg`` prints it as one line naming what is wrong (exit status 2) whenever
    it is raised; any other error during a run keeps its traceback."""
