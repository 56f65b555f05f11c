"""The documentation's commands run as written.

- The README's quick start: its ``lmp-seg`` lines run in-process with tiny limits (the embedded
  data set made tiny, a small generated folder for ``my_data``, one photo for ``photos/``), then
  its Python blocks, in order, in one temporary working folder.
- Every ``lmp-seg`` line of the README's quick start is also a command of the documentation
  site (``docs/``): the README's commands are the docs' commands.
- docs/getting-started.md: the ``lmp-seg`` lines of "Train, evaluate, predict" on a generated
  folder laid out as the page describes it.
- The Python examples of docs/index.md, docs/losses.md and docs/zoo.md.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import cv2
import numpy as np
import pytest

from lmp_lightning.cli import main
from tests.cli_args import TINY, TINY_SYNTHETIC

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.DOTALL | re.MULTILINE)

LIMITS = {
    "fit": [
        "--trainer.max_steps=1",
        "--trainer.max_epochs=1",
        "--trainer.limit_train_batches=1",
        "--trainer.limit_val_batches=1",
    ],
    "validate": ["--trainer.limit_val_batches=1"],
    "test": ["--trainer.limit_test_batches=1"],
    "predict": ["--trainer.limit_predict_batches=2"],
}
"""Tiny limits per subcommand, appended after the documented arguments (the last value wins)."""


def _section(text: str, heading: str) -> str:
    """The text under ``heading`` (a Markdown heading line), up to the next heading of its level
    or above."""
    level = len(heading) - len(heading.lstrip("#"))
    start = text.index(f"\n{heading}\n") + len(heading) + 2
    after = re.search(rf"^#{{1,{level}}} ", text[start:], re.MULTILINE)
    return text[start : start + after.start()] if after else text[start:]


def _blocks(text: str, language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(text) if lang == language]


def _commands(text: str) -> list[list[str]]:
    """The ``lmp-seg`` command lines of the ``bash`` blocks of ``text``, as argument lists
    (continuation lines joined, comments dropped), without ``lmp-seg``."""
    commands = []
    for block in _blocks(text, "bash"):
        for line in block.replace("\\\n", " ").splitlines():
            args = shlex.split(line, comments=True)
            if args[:1] == ["lmp-seg"]:
                commands.append(args[1:])
    return commands


def _run(args: list[str]) -> None:
    """Runs one documented command in-process, the tiny limits added."""
    command = args
    if args[0] in LIMITS:  # the synthetic data set's sizes first: a named data set drops them
        rest = [*TINY[len(TINY_SYNTHETIC) :], *LIMITS[args[0]]]
        command = [args[0], *TINY_SYNTHETIC, *args[1:], *rest]
    try:
        main(command)
    except SystemExit as error:
        if error.code not in (0, None):
            raise AssertionError(f"lmp-seg {shlex.join(args)} exited {error.code}") from None


def _folder(root: Path) -> None:
    """A data set of one's own as docs/getting-started.md lays it out: train and val images
    (.jpg and .png), label masks and a classes.txt with an ignore line."""
    root.mkdir()
    (root / "classes.txt").write_text("# my classes\nbackground\ncrack\ncorrosion\nignore: 255\n")
    rng = np.random.default_rng(0)
    for split, count in (("train", 4), ("val", 2)):
        (root / "images" / split).mkdir(parents=True)
        (root / "masks" / split).mkdir(parents=True)
        for i in range(count):
            image = rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)
            mask = rng.integers(0, 3, (64, 80)).astype(np.uint8)
            mask[:2] = 255  # unlabelled pixels
            suffix = ".jpg" if i % 2 else ".png"
            cv2.imwrite(str(root / "images" / split / f"street_{i:03d}{suffix}"), image)
            cv2.imwrite(str(root / "masks" / split / f"street_{i:03d}.png"), mask)


def _photos(folder: Path) -> None:
    folder.mkdir()
    image = np.random.default_rng(1).integers(0, 256, (72, 96, 3), dtype=np.uint8)
    cv2.imwrite(str(folder / "street.jpg"), image)


def _exec_python(blocks: list[str], where: str) -> None:
    namespace: dict = {"__name__": "docs_example"}
    for i, block in enumerate(blocks):
        exec(compile(block, f"{where}, example {i + 1}", "exec"), namespace)


def _quick_start() -> str:
    return _section(README.read_text(encoding="utf-8"), "## Quick start")


def test_the_quick_start_has_its_three_parts() -> None:
    quick_start = _quick_start()
    commands = [args[0] for args in _commands(quick_start)]
    assert commands.count("fit") == 2  # the demo and a folder of one's own
    assert "predict" in commands and ["zoo", "list"] in _commands(quick_start)
    python = _blocks(quick_start, "python")
    assert any("zoo.load" in block for block in python)
    assert any("LossMaxPooling" in block for block in python)


def test_readme_quick_start_commands_are_the_docs_commands() -> None:
    documented = {
        shlex.join(args)
        for page in DOCS.rglob("*.md")
        for args in _commands(page.read_text(encoding="utf-8"))
    }
    missing = [shlex.join(a) for a in _commands(_quick_start()) if shlex.join(a) not in documented]
    assert not missing, f"README quick-start commands found in no docs page: {missing}"


def test_readme_quick_start_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _folder(tmp_path / "my_data")
    _photos(tmp_path / "photos")
    quick_start = _quick_start()
    for args in _commands(quick_start):
        _run(args)
    assert list((tmp_path / "runs" / "my_data").rglob("last.ckpt")), "the folder fit wrote none"
    assert (tmp_path / "predictions" / "street.png").is_file()  # predict with the zoo entry
    _exec_python(_blocks(quick_start, "python"), "README quick start")


def test_getting_started_folder_commands_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _folder(tmp_path / "my_data")
    _photos(tmp_path / "photos")
    page = (DOCS / "getting-started.md").read_text(encoding="utf-8")
    section = _section(page, "### Train, evaluate, predict")
    first_block = f"```bash\n{_blocks(section, 'bash')[0]}```\n"
    commands = _commands(first_block)
    assert [args[0] for args in commands] == ["fit", "validate", "predict"]
    for args in commands:
        _run(args)
    written = sorted(p.name for p in (tmp_path / "runs" / "my_data" / "predictions").iterdir())
    assert written == ["street.png", "street_overlay.png"]


@pytest.mark.parametrize("page", ["index.md", "losses.md", "zoo.md"])
def test_docs_python_examples_run(
    page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lmp_lightning.losses import LOSSES

    monkeypatch.chdir(tmp_path)
    registered = dict(LOSSES)
    try:  # losses.md registers a loss of its own: the registry is put back afterwards
        _exec_python(_blocks((DOCS / page).read_text(encoding="utf-8"), "python"), page)
    finally:
        LOSSES.clear()
        LOSSES.update(registered)
