"""Filters for the notices of dependencies that an ``lmp-seg`` run has no use for.

Each filter hides one known message where it is emitted (the logger it goes to, or the text,
category and module of its warning), so that every other warning and log line, Lightning's
included, is shown as before. :func:`install` puts them in place; the console script calls it
before Lightning is imported, :func:`lmp_lightning.cli.main` again (it does nothing twice).
"""

from __future__ import annotations

import logging
import re
import warnings

__all__ = ["ADVERT_LOGGERS", "install"]

ADVERT_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")
"""The loggers of Lightning's ``rank_zero_info``, which prints its "Tip" adverts (the name is
that of the last of Lightning's ``rank_zero`` modules imported, so both are filtered)."""


class _NoTips(logging.Filter):
    """Drops Lightning's adverts, the records that start with "💡 Tip:" ("try installing
    litlogger", when no LitLogger is configured; "try installing litmodels", when Lightning adds
    its default checkpoint callback). Safe: they advertise optional cloud services and say
    nothing about the run; every other record of the logger (the accelerators found, the
    restored checkpoint, ...) passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("💡 Tip:")


_TIPS = _NoTips()


def install() -> None:
    """Puts the filters in place (once: installing them again changes nothing)."""
    for name in ADVERT_LOGGERS:
        logging.getLogger(name).addFilter(_TIPS)  # a filter already there is not added twice
    # Recent torch deprecates `isinstance(treespec, LeafSpec)` and LeafSpec(); Lightning's
    # result collection (lightning/pytorch/utilities/_pytree.py) still builds one in every fit,
    # validate and test. Safe: the warning is about Lightning's code, not ours or the user's,
    # and nothing changes until a torch release removes LeafSpec (Lightning's own fix then).
    warnings.filterwarnings(
        "ignore",
        message=re.escape("`isinstance(treespec, LeafSpec)` is deprecated"),
        category=FutureWarning,
        module=r"lightning\.pytorch\.utilities\._pytree\Z",
    )
    # Without tensorboard, Lightning's default logger is a CSVLogger, and Lightning says so
    # (tensorboardX "has been removed as a dependency ... pip install lightning[extra]") on
    # every command. Safe: the CSV logger is the intended default here (the run's metrics.csv);
    # a user who installs tensorboard gets its logger without the notice.
    warnings.filterwarnings(
        "ignore",
        message=re.escape("Starting from v1.9.0, `tensorboardX` has been removed"),
        category=UserWarning,
        module=r"lightning\.pytorch\.trainer\.connectors\.logger_connector\.logger_connector\Z",
    )
