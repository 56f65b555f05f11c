"""The ``lmp-seg`` command: Lightning's CLI over :class:`SegmentationModule` and the data module.

``lmp-seg fit --config configs/demo.yaml`` trains; ``--model.loss LossMaxPooling
--model.loss.p 1.3 --model.loss.m 0.25`` picks a loss by class name; ``lmp-seg validate --config
... --ckpt_path PATH`` evaluates a checkpoint; ``--print_config`` prints a complete, reusable YAML.
"""

from __future__ import annotations

from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from lmp_lightning.data import SegmentationDataModule
from lmp_lightning.module import SegmentationModule

__all__ = ["SegmentationCLI", "main", "run_cli"]


class SegmentationCLI(LightningCLI):
    """LightningCLI whose data module hands ``num_classes``, ``class_names`` and
    ``ignore_index`` to the model."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        for key in ("num_classes", "class_names", "ignore_index"):
            parser.link_arguments(f"data.{key}", f"model.{key}", apply_on="instantiate")


def run_cli(args: list[str] | None = None) -> SegmentationCLI:
    """Runs the CLI and returns it (with its trainer, model and data module), for Python use.

    Args:
        args: the command line without the program name; ``None`` reads ``sys.argv[1:]``.
    """
    return SegmentationCLI(SegmentationModule, SegmentationDataModule, args=args)


def main(args: list[str] | None = None) -> None:
    """Entry point of ``lmp-seg``: ``main(["fit", "--config", "configs/demo.yaml"])``."""
    run_cli(args)


if __name__ == "__main__":
    main()
