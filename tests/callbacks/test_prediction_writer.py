"""``lmp-seg predict`` on a folder of images: label PNGs, overlays, no silent overwrite."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lmp_lightning.callbacks import label_palette
from lmp_lightning.cli import main, run_cli
from lmp_lightning.data import SyntheticStreetScenes

TINY = [
    "--trainer.accelerator=cpu",
    "--trainer.devices=1",
    "--trainer.enable_progress_bar=false",
    "--model.encoder_name=resnet18",
]


def _images(folder: Path) -> list[np.ndarray]:
    folder.mkdir()
    scenes = SyntheticStreetScenes(num_images=2, height=50, width=70)
    images = [scenes[i]["image"] for i in range(2)]
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"street{i}.jpg" if i else folder / f"street{i}.png")
    return images


def test_predict_writes_labels_and_overlays(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = _images(tmp_path / "in")
    args = [
        "predict",
        *TINY,
        f"--data.predict_dir={tmp_path / 'in'}",
        f"--trainer.default_root_dir={tmp_path / 'run'}",
    ]
    cli = run_cli(args)
    out = tmp_path / "run" / "predictions"
    assert sorted(p.name for p in out.iterdir()) == [
        "street0.png",
        "street0_overlay.png",
        "street1.png",
        "street1_overlay.png",
    ]
    for i, prediction in enumerate(cli.trainer.predict_loop.predictions):
        png = Image.open(out / f"street{i}.png")
        assert png.mode == "P" and np.array_equal(np.asarray(png), prediction[0].numpy())
        overlay = np.asarray(Image.open(out / f"street{i}_overlay.png")).astype(float)
        colours = label_palette()[prediction[0].numpy()]
        raw = np.asarray(Image.open(sorted((tmp_path / "in").iterdir())[i]).convert("RGB"))
        assert np.abs(overlay - (0.5 * raw + 0.5 * colours)).max() <= 0.5 + 1e-9
        assert overlay.shape == (*images[i].shape[:2], 3)
    before = (out / "street0.png").read_bytes()
    with pytest.raises(SystemExit):  # a second run refuses to overwrite
        main(args)
    assert "street0.png exists" in capsys.readouterr().err
    assert (out / "street0.png").read_bytes() == before


def test_missing_predict_folder_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(
            [
                "predict",
                *TINY,
                f"--data.predict_dir={tmp_path / 'nope'}",
                f"--trainer.default_root_dir={tmp_path}",
            ]
        )
    assert f"predict folder not found: '{tmp_path / 'nope'}'" in capsys.readouterr().err
