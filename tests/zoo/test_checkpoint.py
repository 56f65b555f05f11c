"""Tests of lmp_lightning/zoo/checkpoint.py: a zoo entry's network, for ``--ckpt_path zoo:NAME``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lmp_lightning.module import SegmentationModule
from lmp_lightning.resources import zoo_dir
from lmp_lightning.zoo import ModelCard, load
from lmp_lightning.zoo.checkpoint import network_arguments


def test_network_and_init_weights_rebuild_the_entry() -> None:
    """What ``--ckpt_path zoo:NAME`` needs, without a Lightning checkpoint: the entry's network
    with its weights loaded through ``init_weights``."""
    module = SegmentationModule(
        **network_arguments("zoo:camvid-lmp"), num_classes=11, init_weights="zoo:camvid-lmp"
    )
    reference = load("camvid-lmp").model.state_dict()
    state = module.model.state_dict()
    assert state.keys() == reference.keys()
    assert all(torch.equal(value, reference[key]) for key, value in state.items())


@pytest.mark.parametrize(
    ("training_config", "expected"),
    [
        ({}, {}),
        (
            {"model": {"init_args": {"output_stride": 8, "model_kwargs": {"upsampling": 2}}}},
            {"output_stride": 8, "model_kwargs": {"upsampling": 2}},
        ),
        ({"model": {"output_stride": 16, "lr": 0.1, "loss": "lmp"}}, {"output_stride": 16}),
    ],
    ids=["no-config", "class-path-form", "flat-form"],
)
def test_network_from_card_and_training_config(
    tmp_path: Path, training_config: dict, expected: dict
) -> None:
    card = ModelCard.load(zoo_dir() / "camvid-lmp")
    card.training_config = training_config
    card.save(tmp_path)
    assert network_arguments(str(tmp_path)) == {
        "arch": "deeplabv3plus",
        "encoder_name": "tu-tf_efficientnet_lite0",
        "in_channels": 3,
        **expected,
    }
