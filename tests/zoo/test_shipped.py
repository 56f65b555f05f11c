"""Tests of the entries shipped in the repository's zoo/index.json (the CamVid study's models).

Every entry loads offline from the clone, within the size budget, with its pinned digests and the
metrics of its card. Where ../shared/data/camvid is present, the card's val mIoU is measured again
from the shipped weights with a torchmetrics confusion matrix, independently of the training code's
evaluation loop.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torchmetrics.classification import MulticlassJaccardIndex

from lmp_lightning.zoo import info, list_models, load, read_index, sha256_file

SHIPPED = list_models()
CAMVID = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "camvid"
MAX_BYTES = 20 * 2**20


def test_the_study_ships_entries() -> None:
    # LALL left the zoo in round three: it does not beat BASE+ beyond the seed spread
    assert set(SHIPPED) == {"camvid-base-plus", "camvid-lmp"}


def test_entries_load_with_the_network_blocked() -> None:
    """In a fresh process with HF_HUB_OFFLINE=1 set before any import and every socket
    connection refused, each shipped entry loads and labels an image."""
    code = textwrap.dedent(
        """
        import socket

        def refuse(*args, **kwargs):
            raise OSError("the network was used")

        socket.socket.connect = socket.socket.connect_ex = refuse
        socket.create_connection = socket.getaddrinfo = refuse
        import numpy as np
        from lmp_lightning.zoo import list_models, load

        image = np.zeros((180, 240, 3), dtype=np.uint8)
        for name in list_models():
            assert load(name).segment(image).shape == (180, 240), name
        print("loaded", len(list_models()))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        check=True,
        capture_output=True,
        text=True,
    )
    assert out.stdout.strip().splitlines()[-1] == f"loaded {len(SHIPPED)}"


@pytest.mark.parametrize("name", SHIPPED)
def test_entry_within_budget(name: str) -> None:
    entry = read_index()[name]
    assert entry.path is not None, "shipped entries live in the repository"
    weights = entry.path / "model.safetensors"
    assert weights.stat().st_size <= MAX_BYTES
    assert entry.sha256 == {  # every file that a load reads
        f: sha256_file(entry.path / f) for f in ("card.json", "config.json", "model.safetensors")
    }
    card = info(name)
    assert card["dataset"] == "camvid" and card["num_classes"] == 11
    metrics = card["metrics"]
    assert 0.0 < metrics["miou"] < 1.0
    iou = np.array([np.nan if v is None else v for v in metrics["iou"]])
    assert metrics["miou"] == pytest.approx(np.nanmean(iou))
    readme = (entry.path / "README.md").read_text()
    assert "options {'scale': 0.5}" in readme, "the card must say the input resolution"
    model = load(name)
    image = np.random.default_rng(0).integers(0, 256, (180, 240, 3), dtype=np.uint8)
    labels = model.segment(image)
    assert labels.shape == (180, 240) and labels.min() >= 0 and labels.max() < 11


@pytest.mark.skipif(not (CAMVID / "val.txt").is_file(), reason="needs ../shared/data/camvid")
@pytest.mark.parametrize("name", SHIPPED)
def test_card_miou_measured_again_on_camvid_val(name: str) -> None:
    from lmp_lightning.data.camvid import CamVid

    card = info(name)
    model = load(name)
    if card.get("input_scale", 1.0) != 1.0:
        # the entry resizes by itself: full-size frames, as a user has them, against full-size
        # labels (the card's metrics were measured so)
        data = CamVid(CAMVID, "val")
    else:  # an entry from before input_scale: fed at its training resolution
        options = card["training_config"]["data"].get("dataset_options") or {}
        data = CamVid(CAMVID, "val", **options)
    metric = MulticlassJaccardIndex(11, average=None, ignore_index=card["ignore_index"])
    for i in range(len(data)):
        sample = data[i]
        labels = torch.from_numpy(model.segment(sample["image"]))
        metric.update(labels[None], torch.from_numpy(sample["mask"]).long()[None])
    iou = metric.compute().numpy()
    expected = np.array([np.nan if v is None else v for v in card["metrics"]["iou"]])
    np.testing.assert_allclose(iou, expected, atol=1e-4)
