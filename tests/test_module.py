from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from lmp_lightning.callbacks import format_iou_table
from lmp_lightning.losses import CrossEntropy, LossMaxPooling
from lmp_lightning.module import SegmentationModule


class OracleWithBadBorder(nn.Module):
    """Returns the true labels as logits inside the image and class 0 in any padding."""

    def __init__(self, labels: torch.Tensor, num_classes: int) -> None:
        super().__init__()
        self.labels = labels
        self.num_classes = num_classes
        self.seen_shapes: list[tuple[int, ...]] = []

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        self.seen_shapes.append(tuple(image.shape))
        B, _, H, W = image.shape
        logits = torch.zeros(B, self.num_classes, H, W)
        logits[:, 0] = 10.0  # class 0 everywhere, the padded border included
        h, w = self.labels.shape[-2:]
        inside = (
            nn.functional.one_hot(self.labels.clamp(max=self.num_classes - 1), self.num_classes)
            .permute(0, 3, 1, 2)
            .float()
            * 20
        )
        logits[:, :, :h, :w] = inside
        return logits


def test_padding_to_stride_and_crop_back() -> None:
    module = SegmentationModule("fpn", "resnet18", num_classes=3)
    labels = torch.randint(0, 3, (1, 50, 70), generator=torch.Generator().manual_seed(0))
    oracle = OracleWithBadBorder(labels, 3)
    module.model = oracle
    module.val_metrics.reset()
    module.validation_step({"image": torch.rand(1, 3, 50, 70), "mask": labels}, 0)
    assert oracle.seen_shapes == [(1, 3, 64, 96)]  # padded to multiples of 32
    iou = module.val_metrics.compute()["val/iou"]
    assert torch.allclose(iou, torch.ones(3))  # the class-0 border never counted
    assert module(torch.rand(2, 3, 50, 70)).shape == (2, 3, 50, 70)


def test_ignore_index_reaches_the_loss() -> None:
    module = SegmentationModule(
        "fpn", "resnet18", num_classes=3, ignore_index=7, loss=LossMaxPooling()
    )
    assert module.loss.ignore_index == 7


def test_deeplab_papers_setting() -> None:
    module = SegmentationModule("deeplabv3", "resnet101", num_classes=19, output_stride=8)
    assert module.stride == 8
    with pytest.raises(ValueError, match="output_stride applies to"):
        SegmentationModule("unet", "resnet18", num_classes=3, output_stride=8)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"arch": "nonet"}, r"unknown architecture 'nonet'; valid names are \[.*'deeplabv3'"),
        ({"encoder_name": "resnet7"}, r"unknown encoder 'resnet7'; valid names are \[.*resnet18"),
        ({"encoder_name": "tu-notamodel"}, "not a timm model"),
        ({"class_names": ["a"]}, "class_names has 1 names but num_classes=3"),
        ({"lr": -1.0}, "lr > 0"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SegmentationModule(
            **{"arch": "fpn", "encoder_name": "resnet18", "num_classes": 3, **kwargs}
        )


def test_poly_schedule() -> None:
    module = SegmentationModule("fpn", "resnet18", num_classes=3, lr=0.1, poly_power=0.9)
    module._trainer = type("T", (), {"estimated_stepping_batches": 100})()
    config = module.configure_optimizers()
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    assert optimizer.param_groups[0]["momentum"] == 0.9
    lrs = []
    for _ in range(100):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[0] == pytest.approx(0.1)
    assert lrs[50] == pytest.approx(0.1 * 0.5**0.9)
    assert lrs[99] == pytest.approx(0.1 * 0.01**0.9)


def test_iou_table() -> None:
    table = format_iou_table(["road", "pole", "sign"], [0.5, float("nan"), 0.25])
    rows = [line.split() for line in table.splitlines()]
    assert rows == [
        ["class", "IoU", "(%)"],
        ["road", "50.00"],
        ["pole", "-"],
        ["sign", "25.00"],
        ["mean", "37.50"],
    ]


def test_the_package_exports_its_api_and_losses_by_name() -> None:
    import lmp_lightning
    from lmp_lightning import LossMaxPooling, SegmentationDataModule, SegmentationModule

    assert {"SegmentationModule", "SegmentationDataModule", "LossMaxPooling"} <= set(
        lmp_lightning.__all__
    )
    for name in ("lmp", "LossMaxPooling"):
        module = SegmentationModule("fpn", "resnet18", num_classes=3, loss=name, ignore_index=7)
        assert isinstance(module.loss, LossMaxPooling) and module.loss.ignore_index == 7
    with pytest.raises(KeyError, match="unknown loss 'nope'"):
        SegmentationModule("fpn", "resnet18", num_classes=3, loss="nope")
    assert SegmentationDataModule().num_classes == 10


def test_training_step_returns_the_predictions() -> None:
    module = SegmentationModule("fpn", "resnet18", num_classes=3).eval()  # no dropout
    batch = {"image": torch.rand(2, 3, 64, 64), "mask": torch.randint(0, 3, (2, 64, 64))}
    out = module.training_step(batch, 0)
    assert torch.equal(out["preds"], module(batch["image"]).argmax(1))
    assert out["loss"].requires_grad


def test_module_setup_hands_the_data_module_to_the_loss() -> None:
    seen = []

    class Recording(CrossEntropy):
        def setup(self, datamodule: object) -> None:
            seen.append(datamodule)

    module = SegmentationModule("fpn", "resnet18", num_classes=3, loss=Recording())
    data = SimpleNamespace(num_classes=3)
    module.trainer = SimpleNamespace(datamodule=data)  # type: ignore[assignment]
    module.setup("fit")
    assert seen == [data]
