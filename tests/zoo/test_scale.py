"""Entries that know their scale: ``segment`` and ``lmp-seg predict`` resize the input by the
training scale and return labels at the input's size."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from lightning import Trainer
from PIL import Image
from torch import Tensor, nn

from lmp_lightning.cli import run_cli
from lmp_lightning.data import SegmentationDataModule
from lmp_lightning.data.sets import Synthetic
from lmp_lightning.module import SegmentationModule
from lmp_lightning.zoo import ModelCard, SegmentationModel, export_checkpoint
from tests.cli_args import TINY


class SizeDependent(nn.Module):
    """Class 1 everywhere when the input is less than 100 pixels high, else class 0; remembers
    the last input."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        self.seen = x
        sign = 1.0 if x.shape[-2] < 100 else -1.0
        logits = torch.zeros(x.shape[0], 2, *x.shape[-2:])
        logits[:, 1] = sign
        return logits


class HalfScale(Synthetic):
    """The synthetic scenes, as a data set fed at half resolution would say (``scale=0.5``)."""

    @property
    def input_scale(self) -> float:
        return 0.5


def _card(scale: float) -> ModelCard:
    return ModelCard(
        name="size",
        architecture="fpn",
        encoder="resnet18",
        in_channels=3,
        num_classes=2,
        class_names=["a", "b"],
        input_scale=scale,
    )


def test_segment_applies_the_input_scale_and_answers_at_full_size() -> None:
    image = np.random.default_rng(0).integers(0, 256, (120, 161, 3), dtype=np.uint8)
    net = SizeDependent()
    model = SegmentationModel(net, _card(0.5))
    labels = model.segment(image)
    assert labels.shape == (120, 161) and (labels == 1).all()  # the network saw 60x80
    assert net.seen is not None and tuple(net.seen.shape[-2:]) == (64, 96)  # padded to 32
    # area interpolation, as the CamVid data set resizes (written out here with cv2)
    expected = cv2.resize(image, (80, 60), interpolation=cv2.INTER_AREA)
    torch.testing.assert_close(net.seen[..., :60, :80], model.normalise(expected))
    # the option that turns it off
    labels = model.segment(image, rescale=False)
    assert labels.shape == (120, 161) and (labels == 0).all()
    assert tuple(net.seen.shape[-2:]) == (128, 192)
    # a card without a scale feeds the image as it is
    assert (SegmentationModel(SizeDependent(), _card(1.0)).segment(image) == 0).all()


@pytest.mark.parametrize("scale", [0.0, -1.0, float("nan"), True])
def test_card_rejects_a_bad_scale(scale: float) -> None:
    with pytest.raises(ValueError, match="input_scale"):
        _card(scale)


@pytest.mark.parametrize(
    "data",
    [
        {"dataset": {"class_path": "lmp_lightning.data.sets.CamVid", "init_args": {"scale": 0.5}}},
        {"dataset": {"class_path": "camvid", "init_args": {"root": "x", "scale": 0.5}}},
        {"dataset": "camvid", "dataset_options": {"scale": 0.5}},  # a config of 0.1
    ],
    ids=["class-path", "short-name", "dataset-options-of-0.1"],
)
def test_export_records_the_training_scale(data: dict[str, object], tmp_path: Path) -> None:
    module = SegmentationModule("fpn", "resnet18", num_classes=11)
    path = tmp_path / "run" / "checkpoints" / "last.ckpt"
    path.parent.mkdir(parents=True)
    trainer = Trainer(accelerator="cpu", logger=False, enable_checkpointing=False)
    trainer.strategy.connect(module)
    trainer.save_checkpoint(path)  # as Lightning writes it
    (path.parent.parent / "config.yaml").write_text(yaml.safe_dump({"data": data}))
    entry = export_checkpoint(path, "camvid-half", tmp_path / "entry")
    card = ModelCard.load(entry)
    assert card.input_scale == 0.5 and card.dataset == "camvid"
    readme = (entry / "README.md").read_text()
    assert "input scale: 0.5" in readme
    # the data set's options in every form; not the training machine's folder
    assert "options {'scale': 0.5}" in readme and "'root'" not in readme


def test_predict_folder_is_resized_by_the_data_scale_and_written_at_full_size(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)).save(folder / "a.png")
    Image.fromarray(rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)).save(folder / "b.png")
    data = SegmentationDataModule(HalfScale(), predict_dir=str(folder))
    assert data.input_scale == 0.5
    batch = next(iter(data.predict_dataloader()))
    assert tuple(batch["image"].shape[-2:]) == (32, 40)
    assert batch["size"].tolist() == [[64, 80]]
    module = SegmentationModule("fpn", "resnet18", num_classes=10).eval()
    with torch.no_grad():
        assert tuple(module.predict_step(batch, 0).shape) == (1, 64, 80)
    off = SegmentationDataModule(HalfScale(), predict_dir=str(folder), predict_rescale=False)
    assert tuple(next(iter(off.predict_dataloader()))["image"].shape[-2:]) == (64, 80)
    # through the CLI: labels written at each image's own size
    out = tmp_path / "run"
    run_cli(
        [
            "predict",
            *TINY,
            f"--data.predict_dir={folder}",
            "--data.dataset=tests.zoo.test_scale.HalfScale",
            f"--trainer.default_root_dir={out}",
        ]
    )
    sizes = {p.name: Image.open(p).size for p in (out / "predictions").glob("?.png")}
    assert sizes == {"a.png": (80, 64), "b.png": (70, 50)}
