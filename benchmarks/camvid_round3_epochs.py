"""Prints the epochs that benchmarks/camvid_study.py's finished-run check should ask of a run of
benchmarks/camvid_round3_pinned.sh, which Lightning stops at 4320 steps: 96, or, where the run's
newest ``last*.ckpt`` counts 96 epochs or more but fewer than 4320 steps (a resume of the pinned
code from an epoch-end checkpoint can count an epoch without training in it), one more epoch
than it has, so that the check resumes the fit instead of validating it.
Usage: ``camvid_round3_epochs.py RUN_FOLDER``."""

from __future__ import annotations

import sys
from pathlib import Path

from camvid_study import _epochs_done, _newest_last  # beside this script

from lmp_lightning.checkpoints import load_checkpoint

EPOCHS, STEPS = 96, 4320


def epochs_to_ask(folder: Path) -> int:
    last = _newest_last(folder)
    if last is None:
        return EPOCHS
    done = _epochs_done(last)
    if int(load_checkpoint(last, mmap=True)["global_step"]) >= STEPS:
        return min(EPOCHS, done)
    return max(EPOCHS, done + 1)


if __name__ == "__main__":
    print(epochs_to_ask(Path(sys.argv[1])))
