"""The text of ``lmp-seg --help``, in a module of its own: the console script prints it without
loading PyTorch or Lightning (which would take most of the answer's time)."""

from __future__ import annotations

import textwrap

from lmp_lightning.resources import list_configs

__all__ = ["USAGE", "usage"]

USAGE = """usage: lmp-seg [-h] [--version] {fit,validate,test,predict,compare,zoo} ...

Semantic segmentation on imbalanced data: loss max-pooling, the locally adaptive loss and their
baselines, as a Lightning CLI.

commands:
  fit         train (lmp-seg fit --config demo, or a shipped recipe: --config camvid/lmp)
  validate    evaluate a checkpoint on the val split (--ckpt_path PATH or zoo:NAME)
  test        evaluate a checkpoint on the test split
  predict     label the images of a folder (--data.predict_dir DIR) or the test split
  compare     per-class comparison of results files (BASELINE RUN, or --baseline ... --run ...)
  zoo         the model zoo: list, info, export, push

--config takes a YAML file or the name of a shipped recipe:
{recipes}
lmp-seg COMMAND --help shows a command's options."""
"""The top-level usage; ``{recipes}`` stands for the shipped recipes' names."""


def usage() -> str:
    """The answer of ``lmp-seg --help``: :data:`USAGE` with the shipped recipes' names.

    Example:
        >>> text = usage()
        >>> text.startswith("usage: lmp-seg") and "camvid/lmp" in text and "{recipes}" not in text
        True
    """
    recipes = textwrap.fill(", ".join(list_configs()), 96, initial_indent="  ")
    return USAGE.replace("{recipes}", recipes.replace("\n", "\n  "))
