"""Per-class results files: what every ``validate`` and ``test`` writes, and what reports read."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ClassResults"]


@dataclass
class ClassResults:
    """Per-class results of one evaluation.

    Attributes:
        class_names: class names in label order.
        iou: per-class IoU in [0, 1] (NaN where the class is absent from labels and predictions).
        pixel_counts: labelled pixels of every class in the evaluated split.
        miou: the mean IoU over the classes with an IoU.
        split: ``"val"`` or ``"test"``.
        config: the model and loss configuration.
        checkpoint: the checkpoint the weights came from, if any.
    """

    class_names: list[str]
    iou: list[float]
    pixel_counts: list[int]
    miou: float
    split: str = "val"
    config: dict[str, Any] = field(default_factory=dict)
    checkpoint: str | None = None

    def __post_init__(self) -> None:
        if not len(self.class_names) == len(self.iou) == len(self.pixel_counts):
            raise ValueError(
                f"class_names, iou and pixel_counts differ in length: {len(self.class_names)}, "
                f"{len(self.iou)}, {len(self.pixel_counts)}"
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
            ValueError: the file is not a results file.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"results file not found: {str(path)!r}")
        try:
            data = json.loads(path.read_text())
            data["iou"] = [math.nan if v is None else float(v) for v in data["iou"]]
            return cls(**data)
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise ValueError(f"{path} is not a per-class results file: {error}") from None
