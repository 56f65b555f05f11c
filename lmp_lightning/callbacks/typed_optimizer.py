"""A resumed fit takes the optimiser arguments it was given, not the checkpoint's."""

from __future__ import annotations

from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer

__all__ = ["TypedOptimizerOnResume"]


class TypedOptimizerOnResume(Callback):
    """Resumes a fit with the module's optimiser arguments (learning rate, momentum, weight
    decay, ...) instead of the checkpoint's: ``lmp-seg fit --ckpt_path last.ckpt
    --model.optimizer.lr 0.01`` trains on at 0.01. The restored optimiser and schedule states
    are set to them before Lightning loads them, the learning rates rescaled so that the
    position in the schedule is kept. ``lmp-seg fit`` adds it; in Python, pass it to the
    trainer with a module that has ``optimization`` (a
    :class:`~lmp_lightning.SegmentationModule`).
    """

    def on_load_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        described = getattr(pl_module, "optimization", None)
        if not described:
            return
        typed = described["optimizer"]["init_args"]
        ratio = 1.0
        for state in checkpoint.get("optimizer_states", []):
            for group in state.get("param_groups", []):
                old = group.get("initial_lr", group.get("lr"))
                ratio = typed["lr"] / old if old and "lr" in typed else 1.0
                for key in ("lr", "initial_lr"):
                    if key in group:
                        group[key] = group[key] * ratio
                group.update({k: v for k, v in typed.items() if k != "lr" and k in group})
        for state in checkpoint.get("lr_schedulers", []):
            for key in ("base_lrs", "_last_lr"):
                if key in state:
                    state[key] = [value * ratio for value in state[key]]
