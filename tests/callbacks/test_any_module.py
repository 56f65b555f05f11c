"""The callbacks with a user's own LightningModule and DataLoaders (issue 25's table): dict and
tuple batches, results computed from the returned predictions, one clear message where the
protocol is not followed, and the performance-aware sampler in a DataLoader of the user's own."""

from __future__ import annotations

import json
import math
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from lmp_lightning.callbacks import (
    PerClassGainReport,
    PerClassResults,
    PerformanceAwareSampling,
    ValidationImages,
)
from lmp_lightning.callbacks.protocol import ProtocolError
from lmp_lightning.reports import ClassResults
from lmp_lightning.sampling import (
    ClassCenteredCrops,
    ClassStatistics,
    PerformanceAwareSampler,
    TrainingIoUTracker,
)

NUM_CLASSES = 3


class Pairs(Dataset):
    """Random 3x16x16 images and labels (255 on one row), as dicts or (image, mask) tuples."""

    def __init__(self, n: int, tuples: bool = False, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.images = torch.randn(n, 3, 16, 16, generator=g)
        self.masks = torch.randint(0, NUM_CLASSES, (n, 16, 16), generator=g)
        self.masks[:, 0] = 255
        self.tuples = tuples

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):  # type: ignore[no-untyped-def]
        if self.tuples:
            return self.images[i], self.masks[i]
        return {"image": self.images[i], "mask": self.masks[i]}


class OwnModule(L.LightningModule):
    """A user's module: no class names, a plain cross-entropy, predictions returned."""

    def __init__(self, returns: str = "preds", tuples: bool = False) -> None:
        super().__init__()
        self.net = nn.Conv2d(3, NUM_CLASSES, 3, padding=1)
        self.returns, self.tuples = returns, tuples
        self.num_classes = NUM_CLASSES

    def _split(self, batch):  # type: ignore[no-untyped-def]
        return batch if self.tuples else (batch["image"], batch["mask"])

    def training_step(self, batch, batch_idx):  # type: ignore[no-untyped-def]
        image, mask = self._split(batch)
        logits = self.net(image)
        loss = nn.functional.cross_entropy(logits, mask, ignore_index=255)
        if self.returns == "nothing":
            return loss
        return {
            "loss": loss,
            self.returns: logits.detach().argmax(1) if self.returns == "preds" else logits.detach(),
        }

    def validation_step(self, batch, batch_idx):  # type: ignore[no-untyped-def]
        image, _ = self._split(batch)
        logits = self.net(image)
        if self.returns == "nothing":
            return None
        return {"preds": logits.argmax(1)} if self.returns == "preds" else {"logits": logits}

    def configure_optimizers(self):  # type: ignore[no-untyped-def]
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _trainer(tmp_path: Path, callbacks: list, **kwargs) -> L.Trainer:  # type: ignore[no-untyped-def]
    options = dict(
        accelerator="cpu",
        max_epochs=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=tmp_path,
        callbacks=callbacks,
    )
    return L.Trainer(**(options | kwargs))


def _brute_force_iou(model: OwnModule, data: Pairs) -> tuple[list[float], list[int]]:
    """Per-class IoU and labelled pixel counts over the whole split, by a loop over pixels."""
    with torch.no_grad():
        preds = model.net(data.images).argmax(1)
    inter, pred_n, label_n = [0] * NUM_CLASSES, [0] * NUM_CLASSES, [0] * NUM_CLASSES
    for p, t in zip(preds.flatten().tolist(), data.masks.flatten().tolist(), strict=True):
        if t == 255:
            continue
        label_n[t] += 1
        pred_n[p] += 1
        inter[p] += int(p == t)
    iou = [
        inter[c] / (pred_n[c] + label_n[c] - inter[c])
        if pred_n[c] + label_n[c] - inter[c]
        else math.nan
        for c in range(NUM_CLASSES)
    ]
    return iou, label_n


@pytest.mark.parametrize("returns", ["preds", "logits"])
@pytest.mark.parametrize("tuples", [False, True])
def test_per_class_results_from_a_users_module(tmp_path: Path, returns: str, tuples: bool) -> None:
    val = Pairs(6, tuples, seed=1)
    model = OwnModule(returns, tuples)
    results = PerClassResults()
    trainer = _trainer(tmp_path, [results], num_sanity_val_steps=0)
    trainer.fit(model, DataLoader(Pairs(4, tuples), batch_size=2), DataLoader(val, batch_size=4))
    iou, counts = _brute_force_iou(model, val)
    got = results.results["val"]
    assert got.class_names == ["class_0", "class_1", "class_2"]
    assert got.pixel_counts == counts
    assert got.iou == pytest.approx(iou, nan_ok=True)
    assert got.step == trainer.global_step == 2
    saved = ClassResults.load(tmp_path / "results_val.json")  # fit leaves its results
    assert saved.iou == pytest.approx(iou, nan_ok=True)


def test_class_names_and_ignore_index_from_the_callback(tmp_path: Path) -> None:
    """Nothing ignored: the 255 row is a label outside the classes, one clear error."""
    model = OwnModule()
    callback = PerClassResults(class_names=["road", "car", "sky"], ignore_index=None)
    trainer = _trainer(tmp_path, [callback])
    with pytest.raises(ValueError, match=r"PerClassResults: the batch's mask has labels \[255\]"):
        trainer.validate(model, DataLoader(Pairs(2), batch_size=2))
    data = Pairs(2)
    data.masks[:, 0] = 1
    trainer.validate(model, DataLoader(data, batch_size=2))
    assert callback.results["val"].class_names == ["road", "car", "sky"]
    assert sum(callback.results["val"].pixel_counts) == 2 * 16 * 16


def test_gain_report_with_a_users_module(tmp_path: Path) -> None:
    names = ["class_0", "class_1", "class_2"]
    baseline = ClassResults(names, [0.1, 0.2, 0.3], [1, 10, 100], 0.2)
    path = baseline.save(tmp_path / "baseline.json")
    report = PerClassGainReport(str(path))
    trainer = _trainer(tmp_path / "run", [report], num_sanity_val_steps=0)
    trainer.fit(OwnModule(), DataLoader(Pairs(2), batch_size=2), DataLoader(Pairs(2), batch_size=2))
    assert (tmp_path / "run" / "gains" / "gains-step1.png").is_file()


def test_validation_images_with_tuple_batches(tmp_path: Path) -> None:
    callback = ValidationImages(num_images=3)
    trainer = _trainer(tmp_path, [callback], num_sanity_val_steps=0)
    data = DataLoader(Pairs(4, tuples=True), batch_size=2)
    trainer.fit(OwnModule(tuples=True), data, data)
    written = sorted(p.name for p in (tmp_path / "val_images").iterdir())
    assert written == ["step2-0.png", "step2-1.png", "step2-2.png"]


@pytest.mark.parametrize(
    "callback",
    [
        PerClassResults(),
        PerClassGainReport.__new__(PerClassGainReport),
        ValidationImages(),
    ],
    ids=["PerClassResults", "PerClassGainReport", "ValidationImages"],
)
def test_a_step_that_returns_no_predictions_is_one_clear_error(tmp_path: Path, callback) -> None:  # type: ignore[no-untyped-def]
    if isinstance(callback, PerClassGainReport):
        names = ["class_0", "class_1", "class_2"]
        path = ClassResults(names, [0.1, 0.2, 0.3], [1, 1, 1], 0.2).save(tmp_path / "b.json")
        callback = PerClassGainReport(str(path))
    trainer = _trainer(tmp_path, [callback])
    with pytest.raises(ProtocolError, match=r"needs the predictions of validation_step: return"):
        trainer.validate(OwnModule("nothing"), DataLoader(Pairs(2), batch_size=2))


def test_a_batch_without_a_mask_is_one_clear_error(tmp_path: Path) -> None:
    class NoMask(OwnModule):
        def validation_step(self, batch, batch_idx):  # type: ignore[no-untyped-def]
            return {"preds": self.net(batch["x"]).argmax(1)}

    data = [{"x": torch.zeros(3, 8, 8), "y": torch.zeros(8, 8, dtype=torch.long)}]
    with pytest.raises(ProtocolError, match=r"needs the batch's 'mask': .* keys \['x', 'y'\]"):
        _trainer(tmp_path, [PerClassResults()]).validate(NoMask(), DataLoader(data))


def test_a_module_without_classes_is_one_clear_error(tmp_path: Path) -> None:
    model = OwnModule()
    del model.num_classes
    with pytest.raises(ProtocolError, match=r"needs the classes: give the callback class_names"):
        _trainer(tmp_path, [PerClassResults()]).validate(model, DataLoader(Pairs(2)))


# ----------------------------------------------------------------- the sampler, outside our data
def _numpy_set(n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Untransformed (image, mask) tuples: class 2 only in the last image, in one corner."""
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        image = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
        mask = (np.arange(24)[None, :] >= 12).astype(np.uint8).repeat(24, 0)
        if i == n - 1:
            mask[:4, :4] = 2
        out.append((image, mask))
    return out


def test_sampler_in_a_users_dataloader_is_steered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _numpy_set(4)
    stats = ClassStatistics.build(data, NUM_CLASSES, ignore_index=255, progress=False)
    sampler = PerformanceAwareSampler(stats, num_samples=8, uniform_mix=0.0)
    loader = DataLoader(
        ClassCenteredCrops(data, stats, crop_size=16), sampler=sampler, batch_size=4
    )
    seen: list[torch.Tensor] = []  # the training IoU at each update, before the reset
    original = TrainingIoUTracker.end_period

    def recording(self: TrainingIoUTracker) -> None:
        seen.append(self.iou())
        original(self)

    monkeypatch.setattr(TrainingIoUTracker, "end_period", recording)
    callback = PerformanceAwareSampling()  # finds the sampler in the training DataLoader
    _trainer(tmp_path, [callback], limit_val_batches=0).fit(OwnModule(returns="logits"), loader)
    assert callback.sampler is sampler
    assert callback.class_names == ["class_0", "class_1", "class_2"]
    (iou,) = seen  # one update, at the epoch's end: p_c proportional to 1 - IoU_c
    expected = (1 - iou.double()) / (1 - iou.double()).sum()
    assert sampler.class_probabilities.tolist() == pytest.approx(expected.tolist())
    assert not torch.allclose(expected, torch.full((3,), 1 / 3, dtype=torch.float64))


def test_sampler_passed_to_the_callback(tmp_path: Path) -> None:
    data = _numpy_set(4)
    stats = ClassStatistics.build(data, NUM_CLASSES, ignore_index=255, progress=False)
    sampler = PerformanceAwareSampler(stats, num_samples=4, uniform_mix=0.0)
    crops = ClassCenteredCrops(data, stats, crop_size=16)
    loader = DataLoader(crops, sampler=sampler, batch_size=2)
    callback = PerformanceAwareSampling(sampler=sampler, class_names=["a", "b", "c"])
    _trainer(tmp_path, [callback], limit_val_batches=0).fit(OwnModule(), loader)
    assert callback.sampler is sampler and callback.class_names == ["a", "b", "c"]
    assert callback.steps == 2


def test_sampling_without_a_sampler_says_how_in_python_terms(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, [PerformanceAwareSampling()], limit_val_batches=0)
    with pytest.raises(
        ValueError, match=r"RandomSampler.*PerformanceAwareSampling\(sampler=\.\.\.\)"
    ):
        trainer.fit(OwnModule(), DataLoader(Pairs(2), batch_size=2, shuffle=True))


def test_sampling_needs_the_training_predictions(tmp_path: Path) -> None:
    data = _numpy_set(2)
    stats = ClassStatistics.build(data, NUM_CLASSES, ignore_index=255, progress=False)
    sampler = PerformanceAwareSampler(stats)
    loader = DataLoader(ClassCenteredCrops(data, stats, crop_size=8), sampler=sampler)
    trainer = _trainer(tmp_path, [PerformanceAwareSampling()], limit_val_batches=0)
    with pytest.raises(
        ProtocolError, match=r"return \{'loss': loss, 'preds': logits.argmax\(1\)\}"
    ):
        trainer.fit(OwnModule("nothing"), loader)


def test_results_file_names_its_run(tmp_path: Path) -> None:
    callback = PerClassResults(run_name="camvid/lmp")
    trainer = _trainer(tmp_path, [callback], num_sanity_val_steps=0)
    data = DataLoader(Pairs(2), batch_size=2)
    trainer.fit(OwnModule(), data, data)
    saved = json.loads((tmp_path / "results_val.json").read_text())
    assert saved["run"] == "camvid/lmp" and saved["step"] == 1
