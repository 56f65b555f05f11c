"""The package leans on Lightning's and jsonargparse's public interfaces only, and recognises
errors by their type: a guard over the package's source, so that a private attribute or an
English error text matched does not creep back in."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import lmp_lightning

PACKAGE = Path(lmp_lightning.__file__).parent

FORBIDDEN = {
    r"\._actions\b": "jsonargparse's parser internals",
    r"\._typehint\b": "jsonargparse's action internals",
    r"\bfit_loop\b|\bbatch_progress\b|\bepoch_progress\b": "Lightning's loop internals",
    r"\b_parse_ckpt_path\b": "a private LightningCLI method",
    r"from jsonargparse\._|import jsonargparse\._": "a private jsonargparse module",
    r"from lightning[\w.]*\._|from lightning[\w.]* import _": "a private Lightning name",
    r"Original Traceback|unexpected keyword|Parser key|Given value|NestedArg": "an error's text",
}


@pytest.mark.parametrize("pattern", list(FORBIDDEN))
def test_no_private_interface_or_error_text(pattern: str) -> None:
    found = [
        f"{path.relative_to(PACKAGE)}:{number}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(pattern, line)
    ]
    assert not found, f"{FORBIDDEN[pattern]} used at {found}"


def test_one_checkpoint_reader() -> None:
    """Every ``torch.load`` of the package is the one in ``checkpoints.load_checkpoint``."""
    found = [
        str(path.relative_to(PACKAGE))
        for path in sorted(PACKAGE.rglob("*.py"))
        for line in path.read_text().splitlines()
        if "torch.load(" in line and not line.lstrip().startswith(("#", ">>>"))
    ]
    assert found == ["checkpoints.py"], found
