"""Run by tests/callbacks/test_performance_aware_sampling.py: two CPU processes (gloo) train
with performance-aware sampling; each rank writes the crops it drew and its probabilities."""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

from lightning import Trainer
from lightning.pytorch.callbacks import Callback

from lmp_lightning.callbacks import PerformanceAwareSampling
from lmp_lightning.data import SegmentationDataModule
from lmp_lightning.data.sets import Synthetic
from lmp_lightning.module import SegmentationModule
from lmp_lightning.sampling import CropSampling


class Record(Callback):
    def __init__(self, out: Path, sampling: PerformanceAwareSampling) -> None:
        self.out, self.sampling = out, sampling
        self.draws: dict[int, list] = defaultdict(list)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):  # type: ignore[no-untyped-def]
        self.draws[trainer.current_epoch].extend(batch["draw"].tolist())

    def on_train_end(self, trainer, pl_module):  # type: ignore[no-untyped-def]
        probabilities = self.sampling.sampler.class_probabilities.tolist()
        path = self.out / f"rank{trainer.global_rank}.json"
        path.write_text(json.dumps({"draws": self.draws, "probabilities": probabilities}))


def main() -> None:
    out, shard = Path(sys.argv[1]), bool(int(sys.argv[2]))
    data = SegmentationDataModule(
        Synthetic(num_train_images=16, num_val_images=2, image_size=(64, 80)),
        crop_size=32,
        batch_size=2,
        sampler=CropSampling(cache_dir=str(out / "cache"), shard=shard),
    )
    model = SegmentationModule("fpn", "resnet18", num_classes=data.num_classes)
    sampling = PerformanceAwareSampling(update_every_n_steps=2)
    trainer = Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        max_epochs=2,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=1,
        num_sanity_val_steps=0,
        use_distributed_sampler=not shard,
        callbacks=[sampling, Record(out, sampling)],
        default_root_dir=out,
    )
    trainer.fit(model, datamodule=data)


if __name__ == "__main__":
    main()
