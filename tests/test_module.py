from __future__ import annotations

import functools
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch import nn

from lmp_lightning.callbacks import format_iou_table
from lmp_lightning.losses import CrossEntropy, LossMaxPooling
from lmp_lightning.module import SegmentationModule
from lmp_lightning.optim import PolyLR


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
        (
            {"optimizer": functools.partial(torch.optim.SGD, lr=-1.0)},
            "Invalid learning rate: -1.0",
        ),
        ({"lr_scheduler": functools.partial(PolyLR, power=-1)}, "power must be >= 0"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SegmentationModule(
            **{"arch": "fpn", "encoder_name": "resnet18", "num_classes": 3, **kwargs}
        )


def _configure(module: SegmentationModule, steps: int) -> tuple[Any, Any]:
    module._trainer = SimpleNamespace(estimated_stepping_batches=steps)  # type: ignore[assignment]
    config = module.configure_optimizers()
    return config["optimizer"], config["lr_scheduler"]["scheduler"]


def test_default_optimisation_is_the_papers() -> None:
    """SGD (momentum 0.9, weight decay 1e-4) and lr * (1 - step / steps) ** 0.9 over the
    fit's steps, written out here as the closed form."""
    module = SegmentationModule("fpn", "resnet18", num_classes=3)
    optimizer, scheduler = _configure(module, 100)
    assert type(optimizer) is torch.optim.SGD
    assert optimizer.param_groups[0]["momentum"] == 0.9
    assert optimizer.param_groups[0]["weight_decay"] == 1e-4
    lrs = []
    for _ in range(101):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    expected = [0.01 * (1 - step / 100) ** 0.9 for step in range(101)]
    assert lrs == pytest.approx(expected, abs=1e-12)


def test_any_optimizer_and_scheduler_from_python() -> None:
    module = SegmentationModule(
        "fpn",
        "resnet18",
        num_classes=3,
        optimizer=functools.partial(torch.optim.AdamW, lr=1e-3),
        lr_scheduler=functools.partial(torch.optim.lr_scheduler.CosineAnnealingLR, T_max=50),
    )
    optimizer, scheduler = _configure(module, 50)
    assert type(optimizer) is torch.optim.AdamW and optimizer.defaults["lr"] == 1e-3
    assert type(scheduler) is torch.optim.lr_scheduler.CosineAnnealingLR
    described = module.run_config()
    assert described["optimizer"]["class_path"] == "torch.optim.adamw.AdamW"
    assert described["optimizer"]["init_args"]["lr"] == 1e-3
    assert described["optimizer"]["init_args"]["weight_decay"] == 0.01  # AdamW's default
    assert described["lr_scheduler"]["init_args"]["T_max"] == 50


def test_a_schedule_shorter_than_the_fit_warns() -> None:
    short = functools.partial(torch.optim.lr_scheduler.PolynomialLR, total_iters=5)
    module = SegmentationModule("fpn", "resnet18", num_classes=3, lr_scheduler=short)
    with pytest.warns(UserWarning, match="total_iters=5, fewer than the fit's 100"):
        _configure(module, 100)


def test_poly_lr_without_steps_says_so() -> None:
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = PolyLR(optimizer)
    optimizer.step()
    with pytest.raises(RuntimeError, match="PolyLR has no total_iters"):
        scheduler.step()


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


def test_channels_last_gives_the_same_values_and_checkpoints() -> None:
    """``channels_last=True`` changes the memory format only: logits, gradients and the state
    dict (a checkpoint) equal the default's, for an input of any size."""
    torch.manual_seed(0)
    plain = SegmentationModule("deeplabv3plus", "resnet18", num_classes=3)
    fast = SegmentationModule("deeplabv3plus", "resnet18", num_classes=3, channels_last=True)
    fast.load_state_dict(plain.state_dict())
    conv = next(m for m in fast.model.modules() if isinstance(m, nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    image = torch.rand(2, 3, 50, 70)
    target = torch.randint(0, 3, (2, 50, 70))
    grads = []
    for module in (plain, fast):
        module.eval()  # no dropout: its masks follow the memory layout
        logits = module(image)
        module.loss(logits, target).backward()
        grads.append((logits.detach(), conv_grad(module)))
    torch.testing.assert_close(grads[1][0], grads[0][0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(grads[1][1], grads[0][1], rtol=1e-4, atol=1e-5)
    for key, value in fast.state_dict().items():
        torch.testing.assert_close(value, plain.state_dict()[key], rtol=1e-4, atol=1e-5)


def conv_grad(module: SegmentationModule) -> torch.Tensor:
    conv = next(m for m in module.model.modules() if isinstance(m, nn.Conv2d))
    return conv.weight.grad.contiguous()
