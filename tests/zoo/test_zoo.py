"""Tests of lmp_lightning/zoo: export, index, loading and integrity (remote entries:
test_index.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard as HubModelCard
from lightning import Trainer

from lmp_lightning.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from lmp_lightning.module import SegmentationModule
from lmp_lightning.reports.results import ClassResults
from lmp_lightning.zoo import (
    ModelCard,
    SegmentationModel,
    export_checkpoint,
    info,
    list_models,
    load,
    read_index,
    sha256_file,
)

CLASSES = ["road", "car", "pole"]
FAKE = {"model.safetensors": "0" * 64, "card.json": "0" * 64, "config.json": "0" * 64}
FAKE_WEIGHTS = {"model.safetensors": "0" * 64}
"""Well-formed digests for index entries whose files are never read."""


def _pins(entry: Path) -> dict[str, str]:
    """The digests an index pins for an entry: its card, config and weights."""
    return {f: sha256_file(entry / f) for f in ("card.json", "config.json", "model.safetensors")}


@pytest.fixture(scope="module")
def module() -> SegmentationModule:
    torch.manual_seed(0)
    module = SegmentationModule("fpn", "resnet18", num_classes=3, class_names=CLASSES)
    return module.eval()


@pytest.fixture(scope="module")
def checkpoint(module: SegmentationModule, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint written by Lightning itself (``Trainer.save_checkpoint``)."""
    path = tmp_path_factory.mktemp("run") / "checkpoints" / "last.ckpt"
    path.parent.mkdir()
    trainer = Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.strategy.connect(module)
    trainer.save_checkpoint(path)
    config = {
        "model": {"loss": {"class_path": "lmp_lightning.losses.LossMaxPooling",
                           "init_args": {"p": 1.3, "m": 0.25}}},
        "data": {"dataset": "synthetic", "crop_size": 96, "scale_range": [0.5, 1.5],
                 "sampler": {"class_path": "lmp_lightning.sampling.CropSampling",
                             "init_args": {"uniform_mix": 0.5}}},
        "trainer": {"callbacks": [{"class_path": "lmp_lightning.callbacks.PerformanceAwareSampling",
                                   "init_args": {"decay": 0.5}}]},
    }  # fmt: skip
    import yaml

    (path.parent.parent / "config.yaml").write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("results") / "results_val.json"
    return ClassResults(CLASSES, [0.9, 0.5, float("nan")], [900, 90, 0], 0.7).save(path)


@pytest.fixture(scope="module")
def entry(checkpoint: Path, results: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The entry exported under the usual umask (safetensors alone would write -rw-------)."""
    out = tmp_path_factory.mktemp("zoo") / "fpn-demo"
    umask = os.umask(0o022)
    try:
        return export_checkpoint(checkpoint, "fpn-demo", out, results=results)
    finally:
        os.umask(umask)


@pytest.fixture(scope="module")
def loaded(entry: Path) -> SegmentationModel:
    return load(entry)


@pytest.fixture
def copy(entry: Path, tmp_path: Path) -> Path:
    """A copy of the entry that a test may damage."""
    target = tmp_path / "entry"
    target.mkdir()
    for file in entry.iterdir():
        (target / file.name).write_bytes(file.read_bytes())
    return target


def test_export_writes_entry(entry: Path) -> None:
    assert {p.name for p in entry.iterdir()} == {
        "config.json",
        "model.safetensors",
        "card.json",
        "README.md",
    }
    card = json.loads((entry / "card.json").read_text())
    assert card["architecture"] == "fpn" and card["encoder"] == "resnet18"
    assert card["class_names"] == CLASSES and card["num_classes"] == 3
    assert card["mean"] == list(IMAGENET_MEAN) and card["std"] == list(IMAGENET_STD)
    assert card["metrics"]["miou"] == 0.7 and card["metrics"]["iou"] == [0.9, 0.5, None]
    assert card["metrics"]["pixel_counts"] == [900, 90, 0]
    assert card["weights_sha256"] == {
        f: sha256_file(entry / f) for f in ("model.safetensors", "config.json")
    }
    for path in entry.iterdir():
        assert path.stat().st_mode & 0o777 == 0o644, path
    assert card["loss"]["class_path"] == "lmp_lightning.losses.LossMaxPooling"
    assert card["sampler"]["class_path"] == "lmp_lightning.sampling.CropSampling"
    assert card["sampler"]["init_args"] == {"uniform_mix": 0.5}
    assert card["sampler"]["callback"]["init_args"] == {"decay": 0.5}
    assert card["dataset"] == "synthetic" and card["crop_size"] == 96 and card["split"] == "val"
    assert card["license"] == "MIT" and card["source_checkpoint"] == "last.ckpt"
    readme = HubModelCard.load(entry / "README.md")
    assert readme.text.lstrip().startswith("# fpn-demo") and "| car | 50.00 | 90 |" in readme.text
    assert readme.data.license == "mit" and readme.data.datasets == ["synthetic"]
    assert readme.data.library_name == "segmentation-models-pytorch"
    (result,) = readme.data.eval_results
    assert (result.metric_type, result.metric_value) == ("mean_iou", 70.0)
    assert "optimizer" not in json.dumps(card)
    assert "- optimiser:" not in readme.text and "- length:" not in readme.text  # not in config


@pytest.mark.parametrize(
    ("trainer", "length"),
    [({"max_epochs": 96, "max_steps": -1}, "96 epochs"), ({"max_steps": 500}, "500 steps")],
)
def test_readme_names_the_optimiser_schedule_and_length(
    trainer: dict[str, int], length: str
) -> None:
    """From the training config as the CLI saves it: arguments that are set, not the defaults
    left at None or False."""
    config = {
        "trainer": trainer,
        "model": {
            "optimizer": {
                "class_path": "torch.optim.SGD",
                "init_args": {"lr": 0.1, "momentum": 0.9, "nesterov": False, "fused": None},
            },
            "lr_scheduler": {
                "class_path": "lmp_lightning.optim.PolyLR",
                "init_args": {"total_iters": None, "power": 0.9, "last_epoch": -1},
            },
        },
        "data": {"batch_size": 8},
    }
    card = ModelCard("demo", "fpn", "resnet18", 3, 3, CLASSES, training_config=config)
    lines = card.readme().splitlines()
    assert (
        "- optimiser: `torch.optim.SGD` (lr=0.1, momentum=0.9), schedule: "
        "`lmp_lightning.optim.PolyLR` (power=0.9)"
    ) in lines
    assert f"- length: {length} of batch 8" in lines


def test_export_records_the_encoder_weights_training_started_from(
    checkpoint: Path, tmp_path: Path
) -> None:
    """The card names them (the network is rebuilt without them: the entry's weights replace
    them, nothing is loaded or downloaded)."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    assert state["hyper_parameters"].get("encoder_weights") is None
    state["hyper_parameters"]["encoder_weights"] = "imagenet"
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    pretrained = tmp_path / "run" / "checkpoints" / "last.ckpt"
    torch.save(state, pretrained)
    entry = export_checkpoint(pretrained, "fpn-imagenet", tmp_path / "entry")
    assert json.loads((entry / "card.json").read_text())["encoder_weights"] == "imagenet"
    assert (
        "encoder weights at the start of training: `imagenet`" in (entry / "README.md").read_text()
    )


def test_export_refuses_non_empty_dir(checkpoint: Path, tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError, match=str(tmp_path)):
        export_checkpoint(checkpoint, "x", tmp_path)


@pytest.mark.parametrize("size", [(37, 50), (64, 64), (1, 33)])
def test_segment_matches_module(
    loaded: SegmentationModel, module: SegmentationModule, size: tuple
) -> None:
    model = loaded
    assert isinstance(model, SegmentationModel) and not model.training
    image = np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)
    labels = model.segment(image)
    assert labels.shape == size and labels.dtype == np.int64
    x = torch.from_numpy(image).permute(2, 0, 1).float() / 255
    x = (x - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)) / torch.tensor(IMAGENET_STD).view(3, 1, 1)
    with torch.no_grad():
        expected = module(x.unsqueeze(0)).argmax(1)[0].numpy()
    np.testing.assert_array_equal(labels, expected)


def test_segment_rejects_bad_images(loaded: SegmentationModel) -> None:
    model = loaded
    with pytest.raises(TypeError, match="uint8"):
        model.segment(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="HxWx3"):
        model.segment(np.zeros((8, 8), np.uint8))


def test_info_has_card_and_path(entry: Path) -> None:
    card = info(entry)
    assert card["name"] == "fpn-demo" and card["path"] == str(entry.resolve())


def test_sha256_mismatch_refused(copy: Path) -> None:
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"sha256 mismatch for .*model\.safetensors"):
        load(copy)


def test_truncated_weights_never_load(copy: Path) -> None:
    weights = copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ValueError, match=r"sha256 mismatch for .*model\.safetensors"):
        load(copy)
    # even with a card re-hashed to the truncated file, it is refused as unreadable
    card = json.loads((copy / "card.json").read_text())
    card["weights_sha256"]["model.safetensors"] = sha256_file(weights)
    (copy / "card.json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match=r"cannot read weights .*model\.safetensors"):
        load(copy)


def test_architecture_mismatch_refused(copy: Path) -> None:
    card = json.loads((copy / "card.json").read_text())
    card["architecture"] = "unet"
    (copy / "card.json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match=r"architecture mismatch: the card says 'unet'.*'FPN'"):
        load(copy)


def test_changed_config_refused(copy: Path) -> None:
    config = copy / "config.json"
    config.write_text(config.read_text().replace('"activation": null', '"activation": "sigmoid"'))
    with pytest.raises(ValueError, match=r"sha256 mismatch for .*config\.json': the card"):
        load(copy)


def test_class_count_mismatch_refused(copy: Path) -> None:
    """A card and a config.json that agree (and are pinned) but not with the weights."""
    config = json.loads((copy / "config.json").read_text())
    config["classes"] = 4
    (copy / "config.json").write_text(json.dumps(config))
    card = json.loads((copy / "card.json").read_text())
    card["num_classes"], card["class_names"] = 4, [*CLASSES, "sky"]
    card["weights_sha256"]["config.json"] = sha256_file(copy / "config.json")
    (copy / "card.json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match=r"num_classes=4 but the weights .* have 3"):
        load(copy)


def test_card_config_class_mismatch_refused(copy: Path) -> None:
    card = json.loads((copy / "card.json").read_text())
    card["num_classes"], card["class_names"] = 4, [*CLASSES, "sky"]
    (copy / "card.json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match="num_classes mismatch"):
        load(copy)


@pytest.mark.parametrize("missing", ["model.safetensors", "config.json", "card.json"])
def test_missing_file_refused(copy: Path, missing: str) -> None:
    (copy / missing).unlink()
    with pytest.raises(FileNotFoundError, match=missing.replace(".", r"\.")):
        load(copy)


def test_unlisted_weights_refused(copy: Path) -> None:
    card = json.loads((copy / "card.json").read_text())
    card["weights_sha256"] = {}
    (copy / "card.json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match="unverifiable"):
        load(copy)


def test_index_lists_and_loads_entries(entry: Path, tmp_path: Path) -> None:
    zoo = tmp_path / "zoo"
    (zoo / "fpn-demo").mkdir(parents=True)
    for file in entry.iterdir():
        (zoo / "fpn-demo" / file.name).write_bytes(file.read_bytes())
    index = zoo / "index.json"
    index.write_text(
        json.dumps(
            {
                "entries": {
                    "fpn-demo": {"path": "fpn-demo", "sha256": _pins(entry)},
                    "remote": {"url": "hub:org/remote@0123abc", "sha256": _pins(entry)},
                }
            }
        )
    )
    assert list_models(index) == ["fpn-demo", "remote"]
    assert info("fpn-demo", index)["path"] == str((zoo / "fpn-demo").resolve())
    assert load("fpn-demo", index).class_names == CLASSES
    with pytest.raises(KeyError, match=r"valid names are \['fpn-demo', 'remote'\]"):
        load("nope", index)


def test_index_pinned_digest_checked(entry: Path, tmp_path: Path) -> None:
    index = tmp_path / "index.json"
    index.write_text(
        json.dumps({"entries": {"e": {"path": ".", "sha256": {**_pins(entry), **FAKE_WEIGHTS}}}})
    )
    for file in entry.iterdir():
        (tmp_path / file.name).write_bytes(file.read_bytes())
    with pytest.raises(ValueError, match="the zoo index expects 0000"):
        load("e", index)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"url": "hub:org/repo", "sha256": FAKE}, "pin a revision"),
        (
            {"url": "hub:org/repo@main"},
            r"must pin \['card.json', 'config.json', 'model.safetensors'\]",
        ),
        ({"url": "ftp://x", "sha256": FAKE}, "url must be"),
        ({"path": "a", "url": "hub:x@y"}, "exactly one"),
        ({"path": "../outside", "sha256": FAKE}, "leaves"),
        ({"path": 5, "sha256": FAKE}, "'path' must be a string"),
        ({"path": "a", "sha256": {"model.safetensors": 5, "card.json": "0" * 64}}, "digests"),
    ],
)
def test_malformed_index_entries(tmp_path: Path, spec: dict, message: str) -> None:
    index = tmp_path / "index.json"
    index.write_text(json.dumps({"entries": {"bad": spec}}))
    with pytest.raises(ValueError, match=message):
        read_index(index)


def test_card_requires_consistent_classes() -> None:
    with pytest.raises(ValueError, match="class_names has 2 names but num_classes=3"):
        ModelCard("x", "fpn", "resnet18", 3, 3, ["a", "b"])


def test_float16_weights_halve_the_file_and_run_in_float32(
    checkpoint: Path, entry: Path, module: SegmentationModule, tmp_path: Path
) -> None:
    half = export_checkpoint(checkpoint, "fpn-half", tmp_path / "half", weights_dtype="float16")
    size = (half / "model.safetensors").stat().st_size
    assert size < 0.55 * (entry / "model.safetensors").stat().st_size
    from safetensors import safe_open

    with safe_open(str(half / "model.safetensors"), "pt") as stored:
        dtypes = {stored.get_slice(k).get_dtype() for k in stored.keys()}
    assert "F16" in dtypes and "F32" not in dtypes  # every floating tensor halved
    card = ModelCard.load(half)
    assert card.weights_dtype == "float16" and ModelCard.load(entry).weights_dtype == "float32"
    assert "weights stored as float16" in (half / "README.md").read_text()
    model = load(half)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    # the network's weights are the checkpoint's, rounded to float16 and back
    for name, value in module.model.state_dict().items():
        loaded = model.model.state_dict()[name]
        expected = value.half().to(value.dtype) if value.is_floating_point() else value
        torch.testing.assert_close(loaded, expected, rtol=0, atol=0, msg=name)
    image = np.random.default_rng(1).integers(0, 256, (40, 52, 3), dtype=np.uint8)
    agree = (model.segment(image) == load(entry).segment(image)).mean()
    assert agree > 0.99


def test_load_runs_in_the_type_asked_for(entry: Path) -> None:
    model = load(entry, dtype=torch.bfloat16)
    assert {p.dtype for p in model.model.parameters()} == {torch.bfloat16}
    image = np.random.default_rng(2).integers(0, 256, (37, 50, 3), dtype=np.uint8)
    labels = model.segment(image)
    assert labels.shape == (37, 50) and labels.dtype == np.int64
    assert (labels == load(entry).segment(image)).mean() > 0.9


def test_a_bad_weights_dtype_is_refused(checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="weights_dtype must be one of"):
        export_checkpoint(checkpoint, "x", tmp_path / "x", weights_dtype="int8")
    assert not (tmp_path / "x").exists()
    with pytest.raises(ValueError, match="card 'x': weights_dtype must be one of"):
        ModelCard("x", "fpn", "resnet18", 3, 3, CLASSES, weights_dtype="float64")


def test_export_flag_stores_float16(checkpoint: Path, results: Path, tmp_path: Path) -> None:
    from lmp_lightning.zoo.cli import zoo_main

    out = tmp_path / "half"
    args = ["export", str(checkpoint), "--name", "h", "--out", str(out), "--results", str(results)]
    zoo_main([*args, "--weights-dtype", "float16"])
    assert ModelCard.load(out).weights_dtype == "float16"
    with pytest.raises(SystemExit):  # argparse names the choices
        zoo_main([*args[:-4], "--out", str(tmp_path / "b"), "--weights-dtype", "int8"])
