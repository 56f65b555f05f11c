"""One line for a command's error, found from the error's type and the command's own input,
never from the wording of another library's message.

- :func:`check_moved`: an argument of lmp-lightning 0.1 that moved (``--model.lr``,
  ``--data.dataset_options``), found in the parsed configuration by the hidden key the parser
  keeps for it.
- :func:`parse_error`: jsonargparse refused the command line (an ``ArgumentError``); the flag
  it refused is found by parsing the command line again without it, and named.
- :func:`one_line`: the message of any error, one line: an error re-raised from a loader
  worker carries the worker's traceback in its message, whose last line is the error itself.
"""

from __future__ import annotations

from argparse import SUPPRESS, ArgumentError
from collections.abc import Sequence
from typing import Any

from lmp_lightning.errors import InputError

__all__ = [
    "MOVED",
    "add_moved_arguments",
    "check_moved",
    "input_error_cause",
    "one_line",
    "parse_error",
]

_MODEL_MOVED = {
    "lr": "--model.optimizer.lr",
    "momentum": "--model.optimizer.momentum",
    "weight_decay": "--model.optimizer.weight_decay",
    "poly_power": "--model.lr_scheduler.power",
}

MOVED: dict[str, str] = {
    **{
        f"model.{old}": f"--model.{old} (model: {old}: in a config file) is {new} now: the "
        "optimiser and the schedule are arguments of their own (lmp-seg fit --print_config shows "
        "them)"
        for old, new in _MODEL_MOVED.items()
    },
    "data.dataset_options": "--data.dataset_options (dataset_options: in a config file) is gone: "
    "give the data set's options as its own arguments, e.g. --data.dataset camvid "
    "--data.dataset.scale 0.5 ('dataset: {class_path: camvid, init_args: {scale: 0.5}}' in a "
    "config file; --data.dataset.help NAME lists a data set's arguments)",
    **{
        f"data.{key}": f"--data.{key} (data: {key}: in a config file) is the synthetic data set's "
        f"own argument now: --data.dataset.{key} ('dataset: {{class_path: synthetic, init_args: "
        f"{{{key}: ...}}}}' in a config file)"
        for key in ("num_train_images", "num_val_images", "image_size")
    },
}
"""Arguments of lmp-lightning 0.1 that moved (the model's optimisation into the optimiser and
the schedule, the data module's data set options into the data set) -> the one line that names
the new spelling. The parser keeps a hidden key for each (:func:`add_moved_arguments`), so that
one given by flag or in a config file is found in the parsed configuration
(:func:`check_moved`)."""


def add_moved_arguments(parser: Any) -> None:
    """Adds a hidden key to ``parser`` for every argument of :data:`MOVED` that its model and
    data module do not take."""
    for key in MOVED:
        try:
            parser.add_argument(f"--{key}", type=Any, default=None, help=SUPPRESS)
        except ArgumentError:  # the class takes it (another model or data module)
            continue


def check_moved(config: Any) -> None:
    """Stops with the one line of :data:`MOVED` for a moved argument given in ``config`` (the
    parsed configuration of one command), and drops the hidden keys, in place.

    Raises:
        InputError: naming the old and the new spelling.
    """
    for key, message in MOVED.items():
        group, name = key.split(".")
        section = config.get(group) if hasattr(config, "get") else None
        if section is None or not hasattr(section, "get") or name not in section:
            continue
        if section.get(name) is not None:
            raise InputError(message)
        del section[name]


def _flag_key(arg: str) -> str | None:
    """``model.loss`` of ``--model.loss`` or ``--model.loss=lmp``; ``None`` for a value."""
    return arg[2:].split("=", 1)[0] if arg.startswith("--") else None


def _reason(error: ArgumentError) -> str:
    """jsonargparse's message without its first line (the key), on one line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return " ".join(lines[1:] or lines)


def parse_error(parser: Any, args: Sequence[str], error: ArgumentError) -> InputError:
    """One line for a command line that ``parser`` refused with ``error``: the flag it refused,
    found by parsing ``args`` again without each flag in turn (last first), and jsonargparse's
    reason. A flag into a class's arguments (``--model.loss.init_args.nope``) says so.

    Args:
        parser: the parser that raised ``error``.
        args: the command line it parsed.
        error: jsonargparse's error.
    """
    flags = [i for i, arg in enumerate(args) if _flag_key(arg) and "." in str(_flag_key(arg))]
    for i in reversed(flags):
        key = str(_flag_key(args[i]))
        takes_value = "=" not in args[i] and i + 1 < len(args) and not args[i + 1].startswith("-")
        rest = [*args[:i], *args[i + 1 + int(takes_value) :]]
        try:
            parser.parse_args(rest)
        except (ArgumentError, SystemExit, ValueError, TypeError, KeyError):
            continue
        value = args[i].split("=", 1)[1] if "=" in args[i] else (args[i + 1] if takes_value else "")
        shown = key.replace(".init_args.", ".")
        parts = shown.split(".")
        if len(parts) > 2:  # an argument of a class given by flag (--model.loss.p)
            owner = ".".join(parts[:-1])
            return InputError(
                f"--{shown}={value}: not an argument of the chosen class, or not a valid value "
                f"for it (--{owner}.help CLASS lists a class's arguments)"
            )
        return InputError(f"--{shown}: {_reason(error)}")
    return InputError(" ".join(line.strip() for line in str(error).splitlines() if line.strip()))


def input_error_cause(error: BaseException) -> BaseException:
    """The :class:`~lmp_lightning.errors.InputError` that ``error`` was raised from (a check of
    ours called by jsonargparse, which wraps it), else ``error``."""
    cause = error.__cause__
    while cause is not None:
        if isinstance(cause, InputError):
            return cause
        cause = cause.__cause__
    return error


def one_line(error: BaseException) -> str:
    """The message of ``error`` on one line. An error re-raised from a loader worker (PyTorch
    raises it again with the worker's traceback as its message) gives its last line, less the
    error's own type name.

    Example:
        >>> one_line(InputError("Caught InputError in worker 0.\\n(its traceback)\\n  ...\\n"
        ...                     "lmp_lightning.errors.InputError: label file 'a.png' is broken"))
        "label file 'a.png' is broken"
        >>> one_line(KeyError("unknown loss 'x'"))
        "unknown loss 'x'"
    """
    message = str(error.args[0] if isinstance(error, KeyError) and error.args else error)
    lines = [line for line in message.strip().splitlines() if line.strip()]
    if len(lines) <= 1:
        return message.strip()
    kind = type(error)
    for name in (f"{kind.__module__}.{kind.__qualname__}", kind.__qualname__):
        if lines[-1].startswith(f"{name}: "):
            return lines[-1].removeprefix(f"{name}: ")
    return " ".join(line.strip() for line in lines)
