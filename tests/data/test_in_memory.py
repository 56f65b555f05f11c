"""``--data.in_memory``: every file decoded once, the same batches as reading the files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from lmp_lightning.cli import SegmentationCLI
from lmp_lightning.data import SegmentationDataModule
from lmp_lightning.data.in_memory import InMemoryDataset
from lmp_lightning.data.sets import Synthetic
from lmp_lightning.module import SegmentationModule
from lmp_lightning.sampling import CropSampling
from tests.test_bad_input import folder_data


def _batches(data: SegmentationDataModule, epochs: int = 2) -> list[torch.Tensor]:
    data.setup("fit")
    seen = []
    for epoch in range(epochs):
        loader = data.train_dataloader()
        if data.train_sampler is not None:
            data.train_sampler.set_epoch(epoch)
        for batch in loader:
            seen += [batch["image"], batch["mask"]]
    return seen


@pytest.mark.parametrize("sampler", [None, "crops"], ids=["shuffled", "sampler"])
def test_in_memory_gives_the_batches_of_the_files_and_reads_each_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sampler: str | None
) -> None:
    root = folder_data(tmp_path / "d")
    for i in range(4):  # a different image each, so that a mix-up would show
        image = np.full((40, 56, 3), 30 * i, np.uint8)
        cv2.imwrite(str(root / "images" / "train" / f"{i}.png"), image)

    def build(in_memory: bool) -> SegmentationDataModule:
        crops = CropSampling(cache_dir=str(tmp_path / f"cache{in_memory}")) if sampler else None
        return SegmentationDataModule(
            "folder", str(root), crop_size=32, batch_size=2, seed=1, sampler=crops,
            in_memory=in_memory,
        )  # fmt: skip

    files = _batches(build(False))
    import lmp_lightning.data._files as files_module

    reads: list[Path] = []
    real = files_module.read_rgb
    monkeypatch.setattr(files_module, "read_rgb", lambda p: reads.append(p) or real(p))
    memory = _batches(build(True))
    assert len(memory) == len(files)
    for a, b in zip(files, memory, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    train_reads = [p for p in reads if p.parent.name == "train"]
    assert sorted(train_reads) == sorted(set(train_reads)) and len(train_reads) == 4


@pytest.mark.parametrize("how", ["flag", "yaml", "python"])
def test_in_memory_from_a_flag_a_file_and_python(how: str, tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"data": {"in_memory": True}}))
    if how == "python":
        tiny = Synthetic(num_train_images=2, image_size=(64, 64))
        data = SegmentationDataModule(tiny, in_memory=True)
    else:
        given = ["--data.in_memory=true"] if how == "flag" else [f"--config={config}"]
        args = ["--data.dataset.num_train_images=2", "--data.dataset.image_size=[64, 64]", *given]
        data = SegmentationCLI(
            SegmentationModule, SegmentationDataModule, args=args, run=False
        ).datamodule
    assert data.hparams["in_memory"] is True
    assert isinstance(data._raw("train"), InMemoryDataset)
    assert data._raw("train") is data._raw("train")  # decoded once
