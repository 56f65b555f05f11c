"""The ``lmp-seg`` command: Lightning's CLI over :class:`SegmentationModule` and the data module.

``lmp-seg fit --config configs/demo.yaml`` trains; ``--model.loss LossMaxPooling
--model.loss.p 1.3 --model.loss.m 0.25`` picks a loss by class name (or by its short name,
``--model.loss lmp``, also in a YAML file); ``lmp-seg validate --config ... --ckpt_path PATH``
evaluates a checkpoint (``zoo:NAME`` for a zoo entry); ``--print_config`` prints a complete,
reusable YAML.
"""

from __future__ import annotations

import os
import sys
import tempfile
import warnings
from argparse import ArgumentError
from pathlib import Path
from typing import Any

from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from lmp_lightning import __version__, _quiet, _short_names
from lmp_lightning._cli_checkpoint import info_line, take_checkpoint
from lmp_lightning._cli_config import KeepConfigCallback
from lmp_lightning._cli_errors import (
    add_moved_arguments,
    check_moved,
    input_error_cause,
    one_line,
    parse_error,
)
from lmp_lightning._usage import usage
from lmp_lightning._yaml import check_config_sizes
from lmp_lightning.callbacks import (
    InterruptCheckpoint,
    PerClassResults,
    PredictionWriter,
    TypedOptimizerOnResume,
    ValidationImages,
)
from lmp_lightning.checkpoints import AtomicCheckpointIO
from lmp_lightning.data import SegmentationDataModule, list_datasets
from lmp_lightning.errors import InputError
from lmp_lightning.losses.base import loss_choices
from lmp_lightning.module import SegmentationModule
from lmp_lightning.optim import DEFAULT_LR_SCHEDULER, DEFAULT_OPTIMIZER
from lmp_lightning.reports.cli import compare_main
from lmp_lightning.reports.results import ClassResults
from lmp_lightning.resources import config_name, config_path
from lmp_lightning.trainer import SegmentationTrainer
from lmp_lightning.zoo.checkpoint import ZOO_PREFIX
from lmp_lightning.zoo.cli import zoo_main

__all__ = ["SegmentationCLI", "main", "run_cli", "validate_checkpoint"]

TRACEBACK_ENV = "LMP_SEG_TRACEBACK"
"""Set to 1 to see the full traceback of a configuration error instead of one line."""


class SegmentationCLI(LightningCLI):
    """LightningCLI whose data module hands ``num_classes``, ``class_names`` and
    ``ignore_index`` to the model.

    With ``--ckpt_path`` (a file or ``zoo:NAME``, from a flag or a config file), the network
    (``NETWORK_KEYS``) comes from the checkpoint and everything else from the command line
    and config files; Lightning's own CLI would parse all of the checkpoint's hyper-parameters
    over them. A fit gets :class:`~lmp_lightning.callbacks.InterruptCheckpoint`.

    Args:
        interrupt: the fit's interrupt callback (its ``status`` tells :func:`main` how the
            command was interrupted).
        *args, **kwargs: those of :class:`~lightning.pytorch.cli.LightningCLI`.
    """

    def __init__(
        self, *args: Any, interrupt: InterruptCheckpoint | None = None, **kwargs: Any
    ) -> None:
        self.interrupt = interrupt if interrupt is not None else InterruptCheckpoint()
        kwargs.setdefault("trainer_class", SegmentationTrainer)
        # Lightning's default (True) seeds with 0 too, warning "No seed found" on every run
        kwargs.setdefault("seed_everything_default", 0)
        super().__init__(*args, **kwargs)

    def init_parser(self, **kwargs: Any) -> LightningArgumentParser:
        """Lightning's parser, whose ``--help`` ends by naming what ``--model.loss`` and
        ``--data.dataset`` take: the registries as they are when the CLI is built, so that a
        loss or data set a user's package registers is listed too."""
        kwargs.setdefault(
            "epilog",
            f"--model.loss takes a loss by class name (short name): {loss_choices()}. "
            f"--data.dataset takes a registered data set: {', '.join(list_datasets())}.",
        )
        return super().init_parser(**kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # The data module is made first; its files are checked for the command before the
        # model is built (a mistake in them is one line, not a failure after minutes).
        parser.link_arguments(
            "data", "model.num_classes", compute_fn=self._checked_classes, apply_on="instantiate"
        )
        for key in ("class_names", "ignore_index"):
            parser.link_arguments(f"data.{key}", f"model.{key}", apply_on="instantiate")
        # The papers' optimisation, written out so that --print_config shows it and
        # --model.optimizer.lr changes one value of it.
        parser.set_defaults(
            {"model.optimizer": DEFAULT_OPTIMIZER, "model.lr_scheduler": DEFAULT_LR_SCHEDULER}
        )
        _short_names.sync()  # the registries' short names, as they are now
        add_moved_arguments(parser)  # hidden keys: a moved argument is named, not refused

    def _checked_classes(self, data: Any) -> int:
        """The data module's class count, once the files of the command's splits are checked
        (:meth:`~lmp_lightning.data.SegmentationDataModule.check_files`)."""
        check = getattr(data, "check_files", None)
        if callable(check) and self.subcommand:
            check(self.subcommand)
        return int(data.num_classes)

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Parses the command line, then applies ``--ckpt_path`` (``take_checkpoint``).

        Lightning's CLI would then parse all of a checkpoint's hyper-parameters over the
        command line; here only the network comes from the checkpoint, so the path is kept
        aside until :meth:`before_instantiate_classes` puts it back (Lightning's merge sees no
        checkpoint)."""
        try:
            super().parse_arguments(parser, args)
        except ArgumentError as error:
            if not isinstance(args, list):
                raise
            raise parse_error(parser, args, error) from None
        self._ckpt_path = None
        subcommand = self.config.get("subcommand")
        if subcommand and self.config[subcommand].get("ckpt_path"):
            config = self.config[subcommand]
            take_checkpoint(subcommand, config)
            self._ckpt_path, config.ckpt_path = config.ckpt_path, None

    def before_instantiate_classes(self) -> None:
        """``--data.seed`` left unset takes the run's seed (``--seed_everything``, an int by now),
        so that one seed drives weights, shuffling, augmentation and the sampler, and the saved
        ``config.yaml`` records it. Lightning's own ``--optimizer`` and ``--lr_scheduler`` (flag
        or YAML) become the model's ``optimizer`` and ``lr_scheduler``: one optimiser, and a
        scheduler that still steps per optimiser step."""
        config = self.config[self.subcommand] if self.subcommand else self.config
        if getattr(self, "_ckpt_path", None) is not None:  # kept aside by parse_arguments
            config.ckpt_path = self._ckpt_path
        check_moved(config)
        _short_names.canonicalise(config)  # short names' aliases -> the registered classes
        root = (config.get("trainer") or {}).get("default_root_dir")
        if root is not None and Path(root).exists() and not Path(root).is_dir():
            raise InputError(f"--trainer.default_root_dir {str(root)!r} is a file, not a folder")
        for key in ("optimizer", "lr_scheduler"):
            if config.get(key) is not None and config.get("model") is not None:
                config.model[key], config[key] = config[key], None
        seed = config.get("seed_everything")
        data = config.get("data")
        if data is not None and data.get("seed") is None and type(seed) is int:
            data.seed = seed

    def after_instantiate_classes(self) -> None:
        """``predict`` writes label PNGs and overlays: to ``<default_root_dir>/predictions``
        unless a :class:`PredictionWriter` is configured; ``fit`` saves ``last.ckpt`` when
        interrupted, names checkpoints that have no ``filename`` ``epoch<E>-step<S>.ckpt``
        (Lightning's ``epoch=E-step=S`` is awkward in a shell) and, with a logger, logs the
        learning rate (``LearningRateMonitor``) and a few validation predictions
        (:class:`ValidationImages`); ``fit``, ``validate`` and ``test`` print per-class tables
        and write results files (:class:`PerClassResults`). A callback of the same kind in the
        configuration replaces the default one. Checkpoints are written atomically beside
        their final names and read as data (:class:`~lmp_lightning.checkpoints.AtomicCheckpointIO`,
        unless the configuration names a checkpoint plugin of its own)."""
        super().after_instantiate_classes()
        strategy: Any = self.trainer.strategy
        if type(strategy.checkpoint_io) is TorchCheckpointIO:
            strategy.checkpoint_io = AtomicCheckpointIO()
        callbacks: list[Any] = self.trainer.callbacks  # type: ignore[attr-defined]
        if self.subcommand == "fit":
            callbacks.append(self.interrupt)
            if not any(isinstance(cb, TypedOptimizerOnResume) for cb in callbacks):
                callbacks.append(TypedOptimizerOnResume())
            for checkpoint in (cb for cb in callbacks if isinstance(cb, ModelCheckpoint)):
                if checkpoint.filename is None:  # Lightning's 'epoch=E-step=S': no '=' here
                    checkpoint.filename = "epoch{epoch}-step{step}"
                    checkpoint.auto_insert_metric_name = False
            if self.trainer.loggers:
                for kind in (LearningRateMonitor, ValidationImages):
                    if not any(isinstance(cb, kind) for cb in callbacks):
                        callbacks.append(kind())
        if self.subcommand in ("fit", "validate", "test"):
            if not any(isinstance(cb, PerClassResults) for cb in callbacks):
                callbacks.append(PerClassResults())
            for results in (cb for cb in callbacks if isinstance(cb, PerClassResults)):
                results.run_name = results.run_name or self._run_name()
        if self.subcommand == "predict" and not any(
            isinstance(cb, PredictionWriter)
            for cb in self.trainer.callbacks  # type: ignore[attr-defined]
        ):
            out = Path(self.trainer.default_root_dir) / "predictions"
            self.trainer.callbacks.append(PredictionWriter(str(out)))  # type: ignore[attr-defined]

    def _run_name(self) -> str | None:
        """The run's name in its results files: its config files' names (``camvid/lmp``), else
        the zoo entry it starts from."""
        config = self.config[self.subcommand] if self.subcommand else self.config
        files = [str(f) for f in (config.get("config") or []) if f]
        if files:
            return "+".join(config_name(f) for f in files)
        weights = str((config.get("model") or {}).get("init_weights") or "")
        return weights if weights.startswith(ZOO_PREFIX) else None

    # LightningCLI calls these instead of the trainer's own when they exist.
    def fit(self, **kwargs: Any) -> None:
        """``trainer.fit``; a fit that trained no step is an error (an empty training loader)."""
        _during_run(self.trainer.fit, **kwargs)
        trainer: Any = self.trainer
        if trainer.global_step == 0 and trainer.max_steps != 0 and not trainer.fast_dev_run:
            raise InputError(
                "fit trained no step: the training loader is empty (check --data.batch_size "
                "against the number of training images, --trainer.limit_train_batches, and the "
                "sampler's num_samples)"
            )

    def validate(self, **kwargs: Any) -> None:
        """``trainer.validate``."""
        _during_run(self.trainer.validate, **kwargs)

    def test(self, **kwargs: Any) -> None:
        """``trainer.test``."""
        _during_run(self.trainer.test, **kwargs)

    def predict(self, **kwargs: Any) -> None:
        """``trainer.predict``; prints where each :class:`PredictionWriter` wrote."""
        _during_run(self.trainer.predict, **kwargs)
        for callback in self.trainer.callbacks:  # type: ignore[attr-defined]
            if isinstance(callback, PredictionWriter):
                info_line(f"label PNGs and overlays written to {callback.output_dir}")


def _during_run(fn: Any, **kwargs: Any) -> None:
    """Calls ``fn``; an exception it raises is marked as raised while running, so that
    :func:`main` keeps its traceback unless it is an :class:`~lmp_lightning.errors.InputError`."""
    try:
        fn(**kwargs)
    except Exception as error:
        error.lmp_during_run = True  # type: ignore[attr-defined]
        raise


def run_cli(
    args: list[str] | None = None, interrupt: InterruptCheckpoint | None = None
) -> SegmentationCLI:
    """Runs the CLI and returns it (with its trainer, model and data module), for Python use.

    Args:
        args: the command line without the program name; ``None`` reads ``sys.argv[1:]``.
        interrupt: the fit's interrupt callback (see :class:`SegmentationCLI`).
    """
    resolved = _shipped_configs(sys.argv[1:] if args is None else args)
    check_config_sizes(resolved)
    with warnings.catch_warnings():  # the command line, with shipped recipe names resolved
        warnings.filterwarnings("ignore", "LightningCLI's args parameter is intended")
        return SegmentationCLI(
            SegmentationModule,
            SegmentationDataModule,
            args=resolved,
            interrupt=interrupt,
            parser_kwargs={"exit_on_error": False},
            save_config_callback=KeepConfigCallback,
            trainer_class=SegmentationTrainer,
        )


def _shipped_configs(args: list[str]) -> list[str]:
    """``--config NAME`` (``-c``, ``--config=``) of a shipped recipe (``camvid/lmp``) names its
    file (:func:`~lmp_lightning.resources.config_path`); a path that exists is kept."""
    out, expect = [], False
    for arg in args:
        if expect:
            arg, expect = config_path(arg), False
        elif arg in ("--config", "-c"):
            expect = True
        elif arg.startswith("--config="):
            arg = "--config=" + config_path(arg.removeprefix("--config="))
        out.append(arg)
    return out


def validate_checkpoint(config: Path, ckpt: Path) -> ClassResults:
    """The per-class results of ``lmp-seg validate --config CONFIG --ckpt_path CKPT``, run in
    this process into a temporary folder (what ``lmp-seg zoo export`` measures a checkpoint
    with when its run left no results file).

    Raises:
        InputError: the validation failed; the message says why.
    """
    with tempfile.TemporaryDirectory(prefix="lmp-zoo-validate-") as tmp:
        args = [
            "validate",
            f"--config={config}",
            f"--ckpt_path={ckpt}",
            f"--trainer.default_root_dir={tmp}",
            "--trainer.logger=false",
            "--trainer.callbacks=[]",
            "--trainer.enable_progress_bar=false",
        ]
        try:
            run_cli(args)
            return ClassResults.load(Path(tmp) / "results_val.json")
        except (ArgumentError, ValueError, KeyError, TypeError, OSError) as error:
            reason = one_line(input_error_cause(error))
            raise InputError(
                f"validating {ckpt} with {config} failed: {reason}; give the metrics with --results"
            ) from None


def main(args: list[str] | None = None) -> None:
    """Entry point of ``lmp-seg``: ``main(["fit", "--config", "configs/demo.yaml"])``;
    ``lmp-seg compare BASELINE RUN [--out DIR]`` compares per-class results files;
    ``lmp-seg zoo list|info|export|push`` manages the model zoo.

    Exit status:
        - 2 with one line on stderr: a parsing or configuration error (an unknown name, a
          missing directory, a mismatch between model, data and checkpoint), or an
          :class:`~lmp_lightning.errors.InputError` (or a missing or existing file) at any stage;
          ``LMP_SEG_TRACEBACK=1`` shows the traceback. Other errors raised while training or
          evaluating keep their traceback.
        - 143 (SIGTERM) or 130 (Ctrl-C): an interrupted fit, after it saved ``last.ckpt``.
    """
    argv = sys.argv[1:] if args is None else args
    if argv[:1] == ["--version"]:
        print(f"lmp-seg (lmp-lightning) {__version__}")
        return
    if argv in ([], ["-h"], ["--help"]):
        print(usage())
        return
    _quiet.install()
    interrupt = InterruptCheckpoint()
    try:
        if argv[:1] == ["compare"]:
            compare_main(argv[1:])
        elif argv[:1] == ["zoo"]:
            zoo_main(argv[1:], validate=validate_checkpoint)
        else:
            run_cli(args, interrupt=interrupt)
            if interrupt.status is not None:  # signalled after the fit's last batch
                raise SystemExit(interrupt.status)
    except SystemExit:
        if interrupt.status is not None:
            raise SystemExit(interrupt.status) from None
        raise
    except KeyboardInterrupt:
        raise SystemExit(interrupt.status or 130) from None
    except (
        ArgumentError,
        ValueError,
        KeyError,
        TypeError,
        FileNotFoundError,
        FileExistsError,
        ConnectionError,
        MisconfigurationException,  # a Trainer argument Lightning refuses (--trainer.devices 0)
    ) as error:
        if os.environ.get(TRACEBACK_ENV, "") not in ("", "0"):
            raise
        cause = input_error_cause(error)
        if getattr(cause, "lmp_during_run", False) and not isinstance(
            cause, InputError | FileNotFoundError | FileExistsError
        ):
            raise  # a failure while running, not bad input: keep the traceback
        print(
            f"lmp-seg: error: {one_line(cause)}\n(set {TRACEBACK_ENV}=1 for the traceback)",
            file=sys.stderr,
        )
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
