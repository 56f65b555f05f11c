"""Model building: pretrained encoder weights from a local file, and offline named weights."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import torch

from lmp_lightning import hub
from lmp_lightning.models import build_model


def test_encoder_weights_from_a_local_file(tmp_path: Path) -> None:
    source = build_model("fpn", "resnet18", num_classes=3)
    path = tmp_path / "encoder.pth"
    torch.save(source.encoder.state_dict(), path)
    model = build_model("unet", "resnet18", num_classes=5, encoder_weights=str(path))
    for key, value in source.encoder.state_dict().items():
        assert torch.equal(model.encoder.state_dict()[key], value)
    with pytest.raises(ValueError, match="does not hold weights of the 'resnet34' encoder"):
        build_model("fpn", "resnet34", num_classes=3, encoder_weights=str(path))


def test_named_weights_offline_fail_fast_with_a_clear_error(monkeypatch) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=3.0: False)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)  # the cache lookup stays offline
    with pytest.raises(ValueError, match=r"not in the local cache .* cannot be reached"):
        build_model("fpn", "resnet18", num_classes=3, encoder_weights="imagenet")
