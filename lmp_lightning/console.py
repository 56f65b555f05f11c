"""The ``lmp-seg`` console script.

``lmp-seg --help`` (``-h``, or no arguments), ``lmp-seg zoo list``, ``lmp-seg zoo info`` and
``lmp-seg --version`` answer without loading PyTorch (a second at most); every other command goes
to :func:`lmp_lightning.cli.main`, with the filters of :mod:`lmp_lightning._quiet` installed
before Lightning is imported.
"""

from __future__ import annotations

import sys

__all__ = ["main"]


def main(args: list[str] | None = None) -> None:
    """Entry point of ``lmp-seg`` (see :func:`lmp_lightning.cli.main` for the exit status)."""
    argv = sys.argv[1:] if args is None else list(args)
    if argv[:1] == ["--version"]:
        from lmp_lightning import __version__

        print(f"lmp-seg (lmp-lightning) {__version__}")
        return
    if argv in ([], ["-h"], ["--help"]):
        from lmp_lightning._usage import usage

        print(usage())
        return
    if argv[:1] == ["zoo"] and argv[1:2] in (["list"], ["info"]):
        from lmp_lightning.zoo.cli import zoo_main

        try:
            zoo_main(argv[1:])
        except (KeyError, ValueError, FileNotFoundError, ConnectionError) as error:
            message = error.args[0] if isinstance(error, KeyError) and error.args else error
            print(f"lmp-seg: error: {message}", file=sys.stderr)
            raise SystemExit(2) from None
        return
    from lmp_lightning import _quiet

    _quiet.install()
    from lmp_lightning.cli import main as cli_main

    cli_main(argv)
