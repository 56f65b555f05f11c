"""The Python examples of the documentation run as written (docs/pipelines.md): the blocks of
a page run in order in one namespace, in a temporary working folder."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def _blocks(page: str) -> list[str]:
    return BLOCK.findall((DOCS / page).read_text())


def test_the_pipelines_page_has_its_examples() -> None:
    blocks = _blocks("pipelines.md")
    assert len(blocks) == 4
    assert sum("torchgeo" in block for block in blocks) == 1


@pytest.mark.parametrize("page", ["pipelines.md"])
def test_examples_run(page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "docs_example"}
    skipped = []
    for i, block in enumerate(_blocks(page)):
        if "torchgeo" in block and importlib.util.find_spec("torchgeo") is None:
            skipped.append(i)
            continue
        exec(compile(block, f"{page}, example {i + 1}", "exec"), namespace)
    if skipped:
        pytest.skip(f"{page}: examples {skipped} need torchgeo (the torchgeo test extra)")
