"""``lmp-seg predict --ckpt_path zoo:NAME --data.predict_dir DIR`` on a user's photos: the
entry's card (classes, normalisation, input scale) decides, and the labels written are those of
``zoo.load(NAME).segment()``, pixel for pixel.

A shipped entry (no network) on small generated photos of odd sizes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lmp_lightning.cli import main
from lmp_lightning.data import SegmentationDataModule
from lmp_lightning.errors import InputError
from lmp_lightning.zoo import info, load

NAME = "camvid-lmp"
"""A shipped entry whose card differs from the data module's defaults: 11 classes (the default
data set has 10), mean and std of 0.5 (not ImageNet's) and input scale 0.5."""

QUIET = ["--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false"]


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """Three photos of odd sizes: noise, and smooth colour ramps with a few blocks."""
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (61, 97, 3), dtype=np.uint8)).save(folder / "noise.png")
    for name, (height, width) in {"street": (180, 240), "tall": (123, 77)}.items():
        y, x = np.mgrid[:height, :width]
        image = np.stack([x * 255 // width, y * 255 // height, (x + y) % 256], -1)
        for _ in range(4):
            top, left = rng.integers(0, height // 2), rng.integers(0, width // 2)
            image[top : top + height // 4, left : left + width // 4] = rng.integers(0, 256, 3)
        Image.fromarray(image.astype(np.uint8)).save(folder / f"{name}.png")
    return folder


def _predict(photos: Path, run: Path, *extra: str) -> None:
    main(
        [
            "predict",
            f"--ckpt_path=zoo:{NAME}",
            f"--data.predict_dir={photos}",
            f"--trainer.default_root_dir={run}",
            *QUIET,
            *extra,
        ]
    )


def _assert_labels_of_segment(photos: Path, written: Path) -> None:
    """Every label PNG in ``written`` equals ``segment()``'s labels of its photo."""
    model = load(NAME)
    for photo in sorted(photos.iterdir()):
        image = np.asarray(Image.open(photo).convert("RGB"))
        labels = np.asarray(Image.open(written / photo.name))
        assert labels.shape == image.shape[:2], photo.name
        np.testing.assert_array_equal(labels, model.segment(image), err_msg=photo.name)
        assert (written / f"{photo.stem}_overlay.png").is_file()


def _card_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if f"zoo:{NAME}" in line and "card" in line]


def test_predict_with_a_zoo_entry_and_no_data_set_labels_as_segment(
    photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No config and no data set: the card's 11 classes, normalisation and input scale are
    used, the labels equal segment()'s, and the output folder is printed; nothing was given
    that the card overrides, so no line says so."""
    card = info(NAME)  # what the data module's defaults get wrong
    assert card["num_classes"] == 11 and card["input_scale"] == 0.5
    assert [round(v, 3) for v in card["mean"]] == [0.498] * 3
    run = tmp_path / "run"
    _predict(photos, run)
    out = capsys.readouterr()
    _assert_labels_of_segment(photos, run / "predictions")
    assert f"written to {run / 'predictions'}" in out.out
    assert _card_lines(out.out + out.err) == []


@pytest.mark.parametrize(
    ("extra", "said", "unsaid"),
    [
        (  # a data set of one's own, with the data module's default (ImageNet) normalisation
            ["--data.dataset=folder", "--data.root={root}"],
            ("mean [0.498, 0.498, 0.498] instead of [0.485, 0.456, 0.406]", "input scale 0.5"),
            (),
        ),
        (  # normalisation given by flag
            ["--data.mean=[0.4, 0.4, 0.4]", "--data.std=[0.2, 0.2, 0.2]"],
            ("mean [0.498, 0.498, 0.498] instead of [0.4, 0.4, 0.4]", "std [0.502"),
            ("input scale",),
        ),
        (  # another input scale
            ["--data.predict_scale=0.75"],
            ("input scale 0.5 instead of 0.75",),
            ("mean", "std"),
        ),
    ],
    ids=["folder-data-set", "mean-std", "scale"],
)
def test_the_card_wins_over_the_data_module_and_one_line_says_so(
    extra: list[str],
    said: tuple[str, ...],
    unsaid: tuple[str, ...],
    photos: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A data module whose normalisation or scale differ from the card's: the card's are
    used (the labels equal segment()'s) and exactly one line names what differed."""
    root = tmp_path / "mydata"  # a small folder data set with the entry's classes
    for folder in ("images/train", "masks/train"):
        (root / folder).mkdir(parents=True)
    (root / "classes.txt").write_text("\n".join(info(NAME)["class_names"]) + "\n")
    Image.fromarray(np.full((20, 30, 3), 90, np.uint8)).save(root / "images/train/a.png")
    Image.fromarray(np.eye(20, 30, dtype=np.uint8)).save(root / "masks/train/a.png")
    run = tmp_path / "run"
    _predict(photos, run, *(arg.replace("{root}", str(root)) for arg in extra))
    out = capsys.readouterr()
    _assert_labels_of_segment(photos, run / "predictions")
    lines = _card_lines(out.out + out.err)
    assert len(lines) == 1, out.out + out.err
    for text in said:
        assert text in lines[0], lines[0]
    for text in unsaid:  # only what differed
        assert text not in lines[0], lines[0]
    assert f"written to {run / 'predictions'}" in out.out


def test_data_module_takes_the_classes_and_scale_of_predict_dir_images(photos: Path) -> None:
    """What the CLI sets from the card: the classes and input scale of ``predict_dir`` images;
    a stage that reads the data set refuses classes other than its own."""
    names = [f"c{i}" for i in range(11)]
    data = SegmentationDataModule(
        predict_dir=str(photos), predict_class_names=names, predict_scale=0.5
    )
    assert (data.num_classes, data.class_names, data.input_scale) == (11, names, 0.5)
    batch = next(iter(data.predict_dataloader()))  # noise.png, 61x97
    assert tuple(batch["image"].shape[-2:]) == (30, 48) and batch["size"].tolist() == [[61, 97]]
    with pytest.raises(InputError, match="predict_class_names"):
        data.setup("validate")
    with pytest.raises(ValueError, match="predict_scale"):
        SegmentationDataModule(predict_scale=0.0)
