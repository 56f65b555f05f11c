from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest

from lmp_lightning.data import SegmentationDataset


class NeedsFiles(SegmentationDataset):
    class_names: ClassVar[tuple[str, ...]] = ("a", "b")
    ignore_index: ClassVar[int] = 255
    requires_root: ClassVar[bool] = True

    @classmethod
    def from_split(cls, split, root, *, seed, num_images, image_size):  # type: ignore[no-untyped-def]
        raise NotImplementedError


def test_missing_data_directory_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "camvid"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        NeedsFiles.check_root(missing)
    with pytest.raises(ValueError, match=r"pass its data directory with --data\.root DIR"):
        NeedsFiles.check_root(None)
    assert NeedsFiles.check_root(tmp_path) == tmp_path
    assert NeedsFiles.num_classes == 2
