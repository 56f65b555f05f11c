"""Checkpoint writes that lose nothing: atomic on the run folder's own filesystem, a full disk
is one line and leaves every earlier checkpoint whole. The tmpfs tests need root and
``mount`` (skipped otherwise)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import yaml

from lmp_lightning.checkpoints import AtomicCheckpointIO
from lmp_lightning.cli import main, run_cli
from tests.cli_args import TINY

ROOT = Path(__file__).resolve().parents[1]
SMALL = [*TINY, "--model.arch=fpn", "--model.encoder_name=resnet18", "--trainer.logger=false"]


def _tmpfs(folder: Path, size: str) -> Iterator[Path]:
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 150 MB tmpfs: room for one checkpoint of the FPN / ResNet-18 (105 MB), not two."""
    yield from _tmpfs(tmp_path / "fs", "150m")


@pytest.fixture
def other_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A run folder on another filesystem than ``$TMPDIR``."""
    yield from _tmpfs(tmp_path / "fs", "64m")


def _checkpoints_config(folder: Path) -> Path:
    """best-*.ckpt on val/mIoU, latest-*.ckpt and last.ckpt every epoch, as the recipes."""
    callbacks = [
        {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint", "init_args": args}
        for args in (
            {"monitor": "val/mIoU", "mode": "max", "filename": "best-epoch{epoch}",
             "auto_insert_metric_name": False},
            {"filename": "latest-epoch{epoch}", "auto_insert_metric_name": False,
             "save_last": True},
        )
    ]  # fmt: skip
    path = folder / "checkpoints.yaml"
    path.write_text(yaml.safe_dump({"trainer": {"callbacks": callbacks}}))
    return path


def test_a_full_disk_is_one_line_and_leaves_whole_checkpoints(
    small_tmpfs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _checkpoints_config(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", f"--config={config}", *SMALL, "--trainer.max_epochs=3",
              f"--trainer.default_root_dir={small_tmpfs}"])  # fmt: skip
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err[-3000:]
    (line,) = [x for x in err.splitlines() if x.startswith("lmp-seg: error:")]
    # the checkpoint or the results of a validation, whichever write finds the disk full
    what = r"(checkpoint '.*\.ckpt'|the per-class results 'results_val\.json')"
    assert re.search(rf"cannot write {what}.* into '.*': no space left", line), line
    assert str(small_tmpfs) in line
    files = sorted(p for p in small_tmpfs.rglob("*") if p.is_file() and ".ckpt" in p.name)
    assert files and not [p for p in files if p.name.endswith(".tmp")], files
    for path in files:  # every file under a checkpoint name is whole
        assert torch.load(path, map_location="cpu", weights_only=True)["global_step"] >= 2


_KILLED_WRITER = """
import os, sys, time, torch
from lmp_lightning.checkpoints import AtomicCheckpointIO
def stop(fd):  # the new file is written: be killed before it is renamed into place
    print("written", flush=True)
    time.sleep(600)
os.fsync = stop
AtomicCheckpointIO().save_checkpoint({"step": 2, "w": torch.ones(1000, 1000)}, sys.argv[1])
"""


def test_a_killed_write_on_another_filesystem_keeps_the_previous_file(
    other_filesystem: Path,
) -> None:
    """The temporary file is written beside the final name (not in ``$TMPDIR``, from where a
    rename across filesystems is a copy): a SIGKILL before the rename leaves the old file."""
    last = other_filesystem / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"step": 1}, last)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writer = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(last)], stdout=subprocess.PIPE, env=env
    )
    assert writer.stdout is not None and writer.stdout.readline() == b"written\n"
    (tmp,) = [p for p in other_filesystem.iterdir() if p.name.endswith(".tmp")]
    assert tmp.name.startswith(".last.ckpt.")  # in the run folder, on its filesystem
    writer.kill()
    writer.wait(timeout=30)
    assert torch.load(last, weights_only=True) == {"step": 1}
    AtomicCheckpointIO().save_checkpoint({"step": 3}, last)  # the next write clears the stale one
    assert sorted(p.name for p in other_filesystem.iterdir()) == ["last.ckpt"]
    assert torch.load(last, weights_only=True) == {"step": 3}


def test_the_cli_writes_checkpoints_atomically(tmp_path: Path) -> None:
    cli = run_cli(["validate", *SMALL, f"--trainer.default_root_dir={tmp_path}"])
    assert type(cli.trainer.strategy.checkpoint_io) is AtomicCheckpointIO
