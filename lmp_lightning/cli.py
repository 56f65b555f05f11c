"""The ``lmp-seg`` command: Lightning's CLI over :class:`SegmentationModule` and the data module.

``lmp-seg fit --config configs/demo.yaml`` trains; ``--model.loss LossMaxPooling
--model.loss.p 1.3 --model.loss.m 0.25`` picks a loss by class name (or by its short name,
``--model.loss lmp``); ``lmp-seg validate --config ... --ckpt_path PATH`` evaluates a checkpoint;
``--print_config`` prints a complete, reusable YAML.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from lmp_lightning.callbacks import PredictionWriter
from lmp_lightning.data import SegmentationDataModule
from lmp_lightning.losses import LOSSES
from lmp_lightning.module import SegmentationModule
from lmp_lightning.reports.cli import compare_main
from lmp_lightning.zoo.checkpoint import ZOO_PREFIX, zoo_checkpoint
from lmp_lightning.zoo.cli import zoo_main

__all__ = ["SegmentationCLI", "main", "run_cli"]

TRACEBACK_ENV = "LMP_SEG_TRACEBACK"
"""Set to 1 to see the full traceback of a configuration error instead of one line."""


class SegmentationCLI(LightningCLI):
    """LightningCLI whose data module hands ``num_classes``, ``class_names`` and
    ``ignore_index`` to the model."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        for key in ("num_classes", "class_names", "ignore_index"):
            parser.link_arguments(f"data.{key}", f"model.{key}", apply_on="instantiate")
        # Lightning builds the training loader (and starts its workers) before it restores a
        # checkpoint's epoch; rebuilt at every epoch start, a resumed run's loader draws the
        # batches of its own epoch. Cheap: the workers restart every epoch anyway.
        parser.set_defaults({"trainer.reload_dataloaders_every_n_epochs": 1})

    def before_instantiate_classes(self) -> None:
        """``--data.seed`` left unset takes the run's seed (``--seed_everything``, an int by now),
        so that one seed drives weights, shuffling, augmentation and the sampler, and the saved
        ``config.yaml`` records it."""
        config = self.config[self.subcommand] if self.subcommand else self.config
        seed = config.get("seed_everything")
        data = config.get("data")
        if data is not None and data.get("seed") is None and type(seed) is int:
            data.seed = seed

    def after_instantiate_classes(self) -> None:
        """``predict`` writes label PNGs and overlays: to ``<default_root_dir>/predictions``
        unless a :class:`PredictionWriter` is configured."""
        super().after_instantiate_classes()
        if self.subcommand == "predict" and not any(
            isinstance(cb, PredictionWriter)
            for cb in self.trainer.callbacks  # type: ignore[attr-defined]
        ):
            out = Path(self.trainer.default_root_dir) / "predictions"
            self.trainer.callbacks.append(PredictionWriter(str(out)))  # type: ignore[attr-defined]


def resolve_loss_args(args: list[str]) -> list[str]:
    """Maps ``--model.loss <short name>`` to the class path and rejects unknown loss names.

    Class names (``LossMaxPooling``), dotted class paths and JSON values pass unchanged.

    Raises:
        ValueError: an unknown loss name; the message lists the valid ones.

    Example:
        >>> resolve_loss_args(["fit", "--model.loss", "lmp", "--model.loss.p", "1.3"])
        ['fit', '--model.loss', 'lmp_lightning.losses.LossMaxPooling', '--model.loss.p', '1.3']
    """
    by_class = {cls.__name__: cls for cls in LOSSES.values()}
    out = list(args)
    for i, arg in enumerate(out):
        if arg == "--model.loss" and i + 1 < len(out):
            j, value, prefix = i + 1, out[i + 1], ""
        elif arg.startswith("--model.loss="):
            j, value, prefix = i, arg.split("=", 1)[1], "--model.loss="
        else:
            continue
        if value in LOSSES:
            cls = LOSSES[value]
            out[j] = f"{prefix}lmp_lightning.losses.{cls.__name__}"
        elif value not in by_class and "." not in value and not value.lstrip().startswith("{"):
            valid = ", ".join(
                f"{name} ({short})"
                for short, name in sorted((s, c.__name__) for s, c in LOSSES.items())
            )
            raise ValueError(f"unknown loss {value!r} for --model.loss; valid losses: {valid}")
    return out


def resolve_zoo_checkpoint(args: list[str]) -> list[str]:
    """Replaces ``--ckpt_path zoo:NAME`` by a verified checkpoint of the zoo entry ``NAME``."""
    out = list(args)
    for i, arg in enumerate(out):
        if arg == "--ckpt_path" and i + 1 < len(out) and out[i + 1].startswith(ZOO_PREFIX):
            out[i + 1] = str(zoo_checkpoint(out[i + 1]))
        elif arg.startswith(f"--ckpt_path={ZOO_PREFIX}"):
            out[i] = f"--ckpt_path={zoo_checkpoint(arg.split('=', 1)[1])}"
    return out


def run_cli(args: list[str] | None = None) -> SegmentationCLI:
    """Runs the CLI and returns it (with its trainer, model and data module), for Python use.

    Args:
        args: the command line without the program name; ``None`` reads ``sys.argv[1:]``.
    """
    args = resolve_zoo_checkpoint(resolve_loss_args(sys.argv[1:] if args is None else args))
    return SegmentationCLI(SegmentationModule, SegmentationDataModule, args=args)


def main(args: list[str] | None = None) -> None:
    """Entry point of ``lmp-seg``: ``main(["fit", "--config", "configs/demo.yaml"])``;
    ``lmp-seg compare BASELINE RUN [--out DIR]`` compares two per-class results files;
    ``lmp-seg zoo list|info|export|push`` manages the model zoo.

    A configuration error (an unknown name, a missing directory, a mismatch between model,
    data and checkpoint) ends the command with one line on stderr and exit status 2; set
    ``LMP_SEG_TRACEBACK=1`` for the full traceback.
    """
    argv = sys.argv[1:] if args is None else args
    try:
        if argv[:1] == ["compare"]:
            compare_main(argv[1:])
        elif argv[:1] == ["zoo"]:
            zoo_main(argv[1:])
        else:
            run_cli(argv)
    except (
        ValueError,
        KeyError,
        TypeError,
        FileNotFoundError,
        FileExistsError,
        ConnectionError,
    ) as error:
        if os.environ.get(TRACEBACK_ENV, "") not in ("", "0"):
            raise
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(
            f"lmp-seg: error: {message}\n(set {TRACEBACK_ENV}=1 for the traceback)", file=sys.stderr
        )
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
