"""The zoo's place among the imports: ``lmp_lightning.cli`` and ``lmp_lightning.weights`` (the
module's weight loading) import the zoo, never the reverse (imports inside functions count),
except ``zoo.export``, which rebuilds a ``SegmentationModule`` from a checkpoint and is imported
by neither."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import lmp_lightning

PACKAGE = Path(lmp_lightning.__file__).parent


def _imports(path: Path) -> set[str]:
    """Every module that ``path`` imports, at any depth of its code."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("name", ["api", "card", "cli", "index", "model"])
def test_the_zoo_imports_neither_the_cli_nor_the_module(name: str) -> None:
    imported = _imports(PACKAGE / "zoo" / f"{name}.py")
    assert not imported & {"lmp_lightning.cli", "lmp_lightning.module"}


@pytest.mark.parametrize("name", ["cli", "weights"])
def test_cli_and_weights_leave_zoo_export_alone(name: str) -> None:
    zoo = {m for m in _imports(PACKAGE / f"{name}.py") if m.startswith("lmp_lightning.zoo")}
    assert zoo and not {m for m in zoo if m.startswith("lmp_lightning.zoo.export")}
    assert "lmp_lightning.zoo" not in zoo  # a module of the zoo, not the package's lazy names


def test_the_encoder_weights_do_not_import_the_zoo() -> None:
    """The zoo's card reads the packaged encoder weights; the digest both use lives apart."""
    imported = _imports(PACKAGE / "encoder_weights.py")
    assert not {m for m in imported if m.startswith("lmp_lightning.zoo")}
