"""Per-class results files: what every ``validate`` and ``test`` writes, and what reports read."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ClassResults"]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass
class ClassResults:
    """Per-class results of one evaluation.

    Attributes:
        class_names: class names in label order.
        iou: per-class IoU in [0, 1] (NaN where the class is absent from labels and predictions).
        pixel_counts: labelled pixels of every class in the evaluated split.
        miou: the mean IoU over the classes with an IoU (checked against ``iou``).
        split: ``"val"`` or ``"test"``.
        config: the model and loss configuration.
        checkpoint: the checkpoint the weights came from, if any.
        step: the training step the evaluation was made at (a validation during ``fit``), if
            known.
        run: the run's name (the configuration it was started from), if known.
    """

    class_names: list[str]
    iou: list[float]
    pixel_counts: list[int]
    miou: float
    split: str = "val"
    config: dict[str, Any] = field(default_factory=dict)
    checkpoint: str | None = None
    step: int | None = None
    run: str | None = None

    def __post_init__(self) -> None:
        if not len(self.class_names) == len(self.iou) == len(self.pixel_counts):
            raise ValueError(
                f"class_names, iou and pixel_counts differ in length: {len(self.class_names)}, "
                f"{len(self.iou)}, {len(self.pixel_counts)}"
            )
        for name, value in zip(self.class_names, self.iou, strict=True):
            if not _is_number(value) or not (math.isnan(value) or 0 <= value <= 1):
                raise ValueError(f"the IoU of {name!r} must be in [0, 1] (or null), got {value!r}")
        for name, count in zip(self.class_names, self.pixel_counts, strict=True):
            if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                raise ValueError(f"the pixel count of {name!r} must be an int >= 0, got {count!r}")
        if not _is_number(self.miou):
            raise ValueError(f"miou must be a number, got {self.miou!r}")

    def check_miou(self) -> None:
        """Raises ``ValueError`` unless :attr:`miou` is the mean of the per-class IoU (within
        1e-4), as every evaluation writes it."""
        present = [v for v in self.iou if not math.isnan(v)]
        expected = math.fsum(present) / len(present) if present else math.nan
        if not (math.isnan(expected) and math.isnan(self.miou)) and not (
            abs(self.miou - expected) <= 1e-4
        ):
            raise ValueError(
                f"miou {self.miou!r} is not the mean of the per-class IoU ({expected:.6f})"
            )

    def save(self, path: str | Path) -> Path:
        """Writes JSON (NaN as null)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = asdict(self)
        data["iou"] = [None if math.isnan(v) else v for v in self.iou]
        path.write_text(json.dumps(data, indent=2, default=str) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> ClassResults:
        """Reads a results file.

        Raises:
            FileNotFoundError: no such file (the message names it).
            ValueError: the file is not a valid results file: not JSON, a missing field, an
                IoU outside [0, 1], a negative pixel count, or an mIoU that is not the mean of
                the per-class IoU.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"results file not found: {str(path)!r}")
        try:
            data = json.loads(path.read_text())
            data["iou"] = [math.nan if v is None else v for v in data["iou"]]
            results = cls(**data)
            results.check_miou()
            return results
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{path} is not a valid per-class results file: {error}") from None
