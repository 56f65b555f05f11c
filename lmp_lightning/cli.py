"""The ``lmp-seg`` command: Lightning's CLI over :class:`SegmentationModule` and the data module.

``lmp-seg fit --config configs/demo.yaml`` trains; ``--model.loss LossMaxPooling
--model.loss.p 1.3 --model.loss.m 0.25`` picks a loss by class name (or by its short name,
``--model.loss lmp``, also in a YAML file); ``lmp-seg validate --config ... --ckpt_path PATH``
evaluates a checkpoint (``zoo:NAME`` for a zoo entry); ``--print_config`` prints a complete,
reusable YAML.
"""

from __future__ import annotations

import inspect
import os
import re
import sys
import tempfile
import warnings
from argparse import ArgumentError
from pathlib import Path
from typing import Any

from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from lmp_lightning import __version__, _quiet
from lmp_lightning._usage import usage
from lmp_lightning._yaml import check_config_sizes
from lmp_lightning.callbacks import (
    InterruptCheckpoint,
    PerClassResults,
    PredictionWriter,
    ValidationImages,
    run_dir,
)
from lmp_lightning.checkpoints import AtomicCheckpointIO, load_checkpoint
from lmp_lightning.data import SegmentationDataModule, list_datasets
from lmp_lightning.data.datamodule import predict_input_scale
from lmp_lightning.errors import InputError
from lmp_lightning.losses.base import loss_choices
from lmp_lightning.module import SegmentationModule
from lmp_lightning.optim import DEFAULT_LR_SCHEDULER, DEFAULT_OPTIMIZER
from lmp_lightning.reports.cli import compare_main
from lmp_lightning.reports.results import ClassResults
from lmp_lightning.resources import config_name, config_path
from lmp_lightning.zoo.api import info
from lmp_lightning.zoo.card import ModelCard
from lmp_lightning.zoo.checkpoint import ZOO_PREFIX, network_arguments
from lmp_lightning.zoo.cli import zoo_main

__all__ = ["SegmentationCLI", "main", "run_cli", "validate_checkpoint"]

TRACEBACK_ENV = "LMP_SEG_TRACEBACK"
"""Set to 1 to see the full traceback of a configuration error instead of one line."""


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
            skip_unset=False,  # every value, defaults included: the run can be repeated
            overwrite=self.overwrite,
            multifile=self.multifile,
        )


LIMIT_KEYS = tuple(
    f"trainer.limit_{stage}_batches" for stage in ("train", "val", "test", "predict")
)
"""Trainer arguments where an int (batches) and a float (a fraction) mean different things."""

NETWORK_KEYS = ("arch", "encoder_name", "in_channels", "output_stride", "model_kwargs")
"""Model arguments that define the network: with ``--ckpt_path`` they come from the checkpoint."""


@rank_zero_only
def _info(message: str) -> None:
    """Prints one line of information, on the first process only."""
    print(message, flush=True)


def _rounded(values: Any) -> list[float]:
    return [round(float(v), 3) for v in values]


def _data_from_card(data: Any, entry: str, predict: bool = True) -> None:
    """Gives the data module of ``predict --ckpt_path zoo:NAME --data.predict_dir DIR`` the
    entry card's classes, normalisation and input scale, as ``segment()`` uses them (with
    ``predict`` false, for ``validate`` and ``test`` on a data set: the normalisation only);
    prints one line naming the values of the data module (flags, config files or a named data
    set) that differed from the card's.

    Args:
        data: the ``data`` namespace of the parsed configuration, changed in place.
        entry: ``zoo:NAME`` (an entry name or directory).
        predict: a ``predict_dir`` run (classes and input scale too).
    """
    card = ModelCard.from_dict(info(entry.removeprefix(ZOO_PREFIX)))
    defaults = inspect.signature(SegmentationDataModule.__init__).parameters

    named = data.get("dataset") != defaults["dataset"].default

    def given(key: str) -> bool:  # a named data set's values count as given, defaults too
        return named or data.get(key) != defaults[key].default

    differs = []
    names = data.get("predict_class_names")
    if names is not None and list(names) != list(card.class_names):
        differs.append(f"its {card.num_classes} classes instead of --data.predict_class_names")
    for key in ("mean", "std"):
        value, used = _rounded(data.get(key)), _rounded(getattr(card, key))
        if value != used and given(key):
            differs.append(f"{key} {used} instead of {value}")
    if not predict:
        data.mean, data.std = tuple(card.mean), tuple(card.std)
        if differs:
            _info(f"{entry}: its card's normalisation is used: {', '.join(differs)}")
        return
    scale = predict_input_scale(
        data.get("dataset"),
        data.get("dataset_options"),
        data.get("predict_rescale"),
        data.get("predict_scale"),
    )
    scale_given = any(given(k) for k in ("predict_rescale", "predict_scale", "dataset_options"))
    if scale != card.input_scale and scale_given:
        differs.append(f"input scale {float(card.input_scale)} instead of {scale}")
    data.predict_class_names = list(card.class_names)
    data.mean, data.std = tuple(card.mean), tuple(card.std)
    data.predict_scale = float(card.input_scale)
    if differs:
        _info(f"predict uses the card of {entry}, not the data module: {', '.join(differs)}")


def _saved_hyper_parameters(path: Path) -> dict[str, Any]:
    # mmap: only the hyper-parameters are read here; Lightning loads the tensors later
    saved = load_checkpoint(path, what="--ckpt_path:", mmap=True)
    if not isinstance(saved, dict) or not {"state_dict", "pytorch-lightning_version"} <= set(saved):
        raise InputError(
            f"--ckpt_path: {str(path)!r} is not a checkpoint of a Lightning fit (it needs "
            "'state_dict' and 'pytorch-lightning_version'); to start from its weights, use "
            "--model.init_weights"
        )
    return saved.get("hyper_parameters", {})


class SegmentationCLI(LightningCLI):
    """LightningCLI whose data module hands ``num_classes``, ``class_names`` and
    ``ignore_index`` to the model.

    With ``--ckpt_path`` (a file or ``zoo:NAME``, from a flag or a config file), the network
    (:data:`NETWORK_KEYS`) comes from the checkpoint and everything else from the command line
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
        super().__init__(*args, **kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # The data module is made first; its files are checked for the command before the
        # model is built (a mistake in them is one line, not a failure after minutes).
        parser.link_arguments(
            "data", "model.num_classes", compute_fn=self._checked_classes, apply_on="instantiate"
        )
        for key in ("class_names", "ignore_index"):
            parser.link_arguments(f"data.{key}", f"model.{key}", apply_on="instantiate")
        # Trainer annotates limit_*_batches as Union[float, int, None], so jsonargparse reads
        # "--trainer.limit_val_batches 1" (or `1` in YAML) as 1.0, all batches. Ints first: an
        # int is a number of batches, a float a fraction, as Lightning documents them.
        for action in parser._actions:
            if action.dest in LIMIT_KEYS and hasattr(action, "_typehint"):
                action._typehint = int | float | None
            # --help names what --data.dataset and --model.loss take (the registries, so that
            # a data set or loss registered before the CLI is built is listed too).
            elif action.dest == "data.dataset":
                action.help = f"{action.help} Registered data sets: {', '.join(list_datasets())}."
            elif action.dest == "model.loss":
                action.help = f"{action.help} Losses by class name (short name): {loss_choices()}."
        # The papers' optimisation, written out so that --print_config shows it and
        # --model.optimizer.lr changes one value of it.
        parser.set_defaults(
            {"model.optimizer": DEFAULT_OPTIMIZER, "model.lr_scheduler": DEFAULT_LR_SCHEDULER}
        )

    def _checked_classes(self, data: Any) -> int:
        """The data module's class count, once the files of the command's splits are checked
        (:meth:`~lmp_lightning.data.SegmentationDataModule.check_files`)."""
        check = getattr(data, "check_files", None)
        if callable(check) and self.subcommand:
            check(self.subcommand)
        return int(data.num_classes)

    def _parse_ckpt_path(self) -> None:
        """Resolves ``zoo:NAME`` and takes the network from the checkpoint's hyper-parameters; a
        network argument given with another value than the checkpoint's is an error. ``predict
        --ckpt_path zoo:NAME --data.predict_dir DIR`` also takes the classes, the normalisation
        and the input scale from the entry's card (:func:`_data_from_card`)."""
        subcommand = self.config.get("subcommand")
        if not subcommand:
            return
        config = self.config[subcommand]
        ckpt_path = config.get("ckpt_path")
        if not ckpt_path:
            return
        path = Path(ckpt_path)
        if str(ckpt_path).strip() == ZOO_PREFIX:
            raise InputError("--ckpt_path zoo: names no entry; `lmp-seg zoo list` lists them")
        if str(ckpt_path).startswith(ZOO_PREFIX):  # its weights: init_weights loads and verifies
            hparams = network_arguments(str(ckpt_path))
            if subcommand == "predict" and config.data.get("predict_dir") is not None:
                _data_from_card(config.data, str(ckpt_path))
            elif config.get("data") is not None:  # a data set: its normalisation is the card's
                _data_from_card(config.data, str(ckpt_path), predict=False)
            config.model.init_weights, config.model.encoder_weights = str(ckpt_path), None
            config.ckpt_path = None
        elif not path.is_file():
            if str(ckpt_path) in ("last", "hpc", "best", "registry"):
                return  # Lightning's own names
            raise InputError(f"--ckpt_path: checkpoint not found: {str(path)!r}")
        else:
            hparams = _saved_hyper_parameters(path)
        defaults = inspect.signature(SegmentationModule.__init__).parameters
        model = config.model
        for key in NETWORK_KEYS:
            if key not in hparams:
                continue
            value, default = model.get(key), defaults[key].default
            if value == hparams[key]:
                continue
            if value != default:
                raise InputError(
                    f"--model.{key} is {value!r} but the checkpoint {str(path)!r} was trained "
                    f"with {key}={hparams[key]!r}; drop the flag (the network comes from the "
                    "checkpoint)"
                )
            model[key] = hparams[key]

    def before_instantiate_classes(self) -> None:
        """``--data.seed`` left unset takes the run's seed (``--seed_everything``, an int by now),
        so that one seed drives weights, shuffling, augmentation and the sampler, and the saved
        ``config.yaml`` records it. Lightning's own ``--optimizer`` and ``--lr_scheduler`` (flag
        or YAML) become the model's ``optimizer`` and ``lr_scheduler``: one optimiser, and a
        scheduler that still steps per optimiser step."""
        config = self.config[self.subcommand] if self.subcommand else self.config
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
                _info(f"label PNGs and overlays written to {callback.output_dir}")


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


_BOILERPLATE = (
    "Not a valid subclass",
    "Expected a",
    "Does not validate",
    "a class path",
    "a dict",
    "Subclass types",
    "Problem with given class_path",
)


_MOVED = {
    "lr": "--model.optimizer.lr",
    "momentum": "--model.optimizer.momentum",
    "weight_decay": "--model.optimizer.weight_decay",
    "poly_power": "--model.lr_scheduler.power",
}
"""Model arguments of lmp-lightning 0.1 that moved into the optimiser and the schedule."""

_MOVED_PATTERN = re.compile(
    r"(?:--model\.|Group 'model' does not accept option '|option 'model\.)"
    r"(lr|momentum|weight_decay|poly_power)\b"
)


def _moved_hint(message: str) -> str:
    """A hint for an argument that moved (``--model.lr`` is ``--model.optimizer.lr`` now)."""
    found = _MOVED_PATTERN.search(message)
    if found is None:
        return message
    name = found.group(1)
    return (
        f"--model.{name} (model: {name}: in a config file) is {_MOVED[name]} now: the optimiser "
        f"and the schedule are arguments of their own (lmp-seg fit --print_config shows them)"
    )


def _parse_error_message(error: BaseException) -> str:
    """One line for a parsing or instantiation error: an unknown loss lists the valid ones;
    otherwise the first reason jsonargparse gives that is not its own boilerplate (an
    argument's ``ValueError``)."""
    message = str(error.args[0] if isinstance(error, KeyError) and error.args else error)
    if "\n" not in message.strip():
        return message
    nested = _NESTED.search(message)
    outer = re.match(r'Parser key "([\w.]+)"', message)
    if nested and outer:  # an argument of a class given by flag: --model.loss.init_args.nope
        key, value = f"{outer.group(1)}.{nested.group(1)}", nested.group(2)
        return (
            f"--{key}={value}: not an argument of the chosen class, or not a valid value for "
            f"it (--{outer.group(1)}.help CLASS lists a class's arguments)"
        )
    if message.startswith('Parser key "model.loss"'):
        given = re.search(r"Given value: (.*)", message)
        value = given.group(1).strip() if given else "?"
        return f"unknown loss {value!r} for --model.loss; valid losses: {loss_choices()}"
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    key = lines[0].rstrip(":") if lines and lines[0].startswith("Parser key") else ""
    reasons = [
        line[2:]
        for line in lines
        if line.startswith("- ") and not line[2:].startswith(_BOILERPLATE)
    ]
    if not reasons and key and len(lines) > 1:  # a single reason, on the next line
        reasons = lines[1:2]
    key = re.sub(r'^Parser key "([\w.]+)"', r"--\1", key)
    if reasons:
        return f"{key}: {reasons[0]}" if key else reasons[0]
    return lines[0] if lines else message


_NESTED = re.compile(r"Given value: NestedArg\(key='([\w.]+)', val='([^']*)'\)")
"""jsonargparse's value of a class argument given by flag (``--model.loss.init_args.p 3``)."""


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
            reason = _parse_error_message(_input_error_cause(error))
            raise InputError(
                f"validating {ckpt} with {config} failed: {reason}; give the metrics with --results"
            ) from None


def _input_error_cause(error: BaseException) -> BaseException:
    """The :class:`~lmp_lightning.errors.InputError` that ``error`` was raised from (a check of
    ours called by jsonargparse, which wraps it), else ``error``."""
    cause = error.__cause__
    while cause is not None:
        if isinstance(cause, InputError):
            return cause
        cause = cause.__cause__
    return error


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
        cause = _input_error_cause(error)
        if getattr(cause, "lmp_during_run", False) and not isinstance(
            cause, InputError | FileNotFoundError | FileExistsError
        ):
            raise  # a failure while running, not bad input: keep the traceback
        if "Original Traceback" in str(cause):  # re-raised from a loader worker
            message = str(cause).strip().splitlines()[-1].split(": ", 1)[-1]
        else:
            message = _moved_hint(_parse_error_message(cause))
        print(
            f"lmp-seg: error: {message}\n(set {TRACEBACK_ENV}=1 for the traceback)", file=sys.stderr
        )
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
