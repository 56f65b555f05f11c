"""Bad input, one table: each case makes what a user might have (files, flags) and names the
message it must get. A case is one line in ``CASES``.

A case's ``prepare(tmp_path)`` returns either the arguments of an ``lmp-seg`` command, which must
end with one line on stderr (exit status 2) matching the pattern, or a function, which must raise
``ValueError`` or ``TypeError`` matching it.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
import yaml

from lmp_lightning.cli import main
from lmp_lightning.losses import CenterLoss, InverseMedianFrequencyCrossEntropy
from lmp_lightning.module import SegmentationModule
from lmp_lightning.zoo import export_checkpoint, read_index
from tests.cli_args import TINY

SMALL = [*TINY, "--model.arch=fpn", "--model.encoder_name=resnet18"]


def folder_data(root: Path, labelled: bool = True) -> Path:
    """A ``folder`` data set of four 40x56 images (val: two) with three classes."""
    rng = np.random.default_rng(0)
    for split, count in (("train", 4), ("val", 2)):
        (root / "images" / split).mkdir(parents=True)
        (root / "masks" / split).mkdir(parents=True)
        for i in range(count):
            mask = np.full((40, 56), 255 if not labelled else 0, np.uint8)
            if labelled:
                mask[:, 28:] = 1
                mask[5:9, 5:9] = 2
            image = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
            cv2.imwrite(str(root / "images" / split / f"{i}.png"), image)
            cv2.imwrite(str(root / "masks" / split / f"{i}.png"), mask)
    (root / "classes.txt").write_text("a\nb\nc\n")
    return root


def fit_args(root: Path, tmp: Path, *extra: str) -> list[str]:
    return [
        "fit",
        "--data.dataset=folder",
        f"--data.root={root}",
        "--data.crop_size=32",
        "--data.batch_size=2",
        "--model.arch=fpn",
        "--model.encoder_name=resnet18",
        "--trainer.accelerator=cpu",
        "--trainer.max_steps=1",
        "--trainer.enable_progress_bar=false",
        f"--trainer.default_root_dir={tmp / 'run'}",
        *extra,
    ]


def truncated_mask(tmp: Path) -> list[str]:
    root = folder_data(tmp / "data")
    mask = root / "masks" / "train" / "1.png"
    mask.write_bytes(mask.read_bytes()[:60])
    return fit_args(root, tmp)


def predict_folder(tmp: Path, files: dict[str, bytes]) -> list[str]:
    folder = tmp / "images"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return ["predict", *SMALL, f"--data.predict_dir={folder}", f"--trainer.default_root_dir={tmp}"]


def png(height: int = 20, width: int = 24) -> bytes:
    _, data = cv2.imencode(".png", np.zeros((height, width, 3), np.uint8))
    return data.tobytes()


def checkpoint(tmp: Path, content: bytes) -> Path:
    path = tmp / "broken.ckpt"
    path.write_bytes(content)
    return path


def second_run_without_logger(tmp: Path) -> list[str]:
    args = [
        "fit",
        *SMALL,
        "--trainer.max_steps=1",
        "--trainer.logger=false",
        f"--trainer.default_root_dir={tmp}",
    ]
    main(args)
    return args


def zoo_entry(tmp: Path) -> Path:
    module = SegmentationModule("fpn", "resnet18", num_classes=3, class_names=["a", "b", "c"])
    ckpt = tmp / "run" / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, ckpt)
    return export_checkpoint(ckpt, "entry", tmp / "zoo" / "entry")


PINNED = ("model.safetensors", "card.json", "config.json")
"""The files an index entry pins."""


def zoo_index(tmp: Path, change: Callable[[dict[str, Any]], None]) -> Callable[[], Any]:
    """An index of one entry with every digest pinned, then ``change`` applied to its entry."""
    from lmp_lightning.zoo import sha256_file

    entry = zoo_entry(tmp)
    spec = {
        "path": "entry",
        "sha256": {f: sha256_file(entry / f) for f in PINNED},
    }
    change(spec)
    index = tmp / "zoo" / "index.json"
    index.write_text(json.dumps({"entries": {"entry": spec}}))
    return lambda: read_index(index)


def edited_card(tmp: Path, change: Callable[[dict[str, Any]], None]) -> Callable[[], Any]:
    from lmp_lightning.zoo import sha256_file

    entry = zoo_entry(tmp)
    pinned = {f: sha256_file(entry / f) for f in PINNED}
    card = json.loads((entry / "card.json").read_text())
    change(card)
    (entry / "card.json").write_text(json.dumps(card))
    index = tmp / "zoo" / "index.json"
    index.write_text(json.dumps({"entries": {"entry": {"path": "entry", "sha256": pinned}}}))

    return lambda: load_entry_via_index(index)


def load_entry_via_index(index: Path) -> Any:
    from lmp_lightning.zoo.model import load_entry

    entry = read_index(index)["entry"]
    return load_entry(entry.path, entry.sha256)


def unpinned_bad_card(tmp: Path, change: Callable[[dict[str, Any]], None]) -> Callable[[], Any]:
    from lmp_lightning.zoo.model import load_entry

    entry = zoo_entry(tmp)
    card = json.loads((entry / "card.json").read_text())
    change(card)
    (entry / "card.json").write_text(json.dumps(card))
    return lambda: load_entry(entry)


def export_into_existing(tmp: Path) -> list[str]:
    entry = zoo_entry(tmp)
    ckpt = tmp / "run" / "checkpoints" / "last.ckpt"
    return ["zoo", "export", str(ckpt), "--name", "again", "--out", str(entry)]


def yaml_file(tmp: Path, content: dict[str, Any]) -> Path:
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(content))
    return path


def alias_bomb(tmp: Path, section: str, key: str) -> Path:
    """A 423-byte YAML whose aliases nest 6 levels of 10 under ``section.key`` (10^6 items)."""
    lines = [f"{section}:", f"  {key}:", "    a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for level in "bcdefg":
        previous = chr(ord(level) - 1)
        lines.append(f"    {level}: &{level} [{', '.join([f'*{previous}'] * 10)}]")
    path = tmp / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def mask_file(tmp: Path, mask: np.ndarray, split: str = "train", *extra: str) -> list[str]:
    """A folder data set whose ``masks/<split>/1.png`` is ``mask``."""
    root = folder_data(tmp / "d")
    cv2.imwrite(str(root / "masks" / split / "1.png"), mask)
    return fit_args(root, tmp, *extra)


def with_label(value: int, dtype: type = np.uint8) -> np.ndarray:
    mask = np.zeros((40, 56), dtype)
    mask[0, 0] = value
    return mask


def tiny_image(tmp: Path) -> list[str]:
    root = folder_data(tmp / "d")
    cv2.imwrite(str(root / "images" / "train" / "1.png"), np.zeros((1, 1, 3), np.uint8))
    cv2.imwrite(str(root / "masks" / "train" / "1.png"), np.zeros((1, 1), np.uint8))
    return fit_args(root, tmp)


def bomb_mask(tmp: Path) -> list[str]:
    """A 100-byte mask PNG that declares 20000 x 20000 pixels."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 20000, 20000, 8, 0, 0, 0, 0)
    data = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 100))
    root = folder_data(tmp / "d")
    png_bytes = b"\x89PNG\r\n\x1a\n" + data + chunk(b"IEND", b"")
    (root / "masks" / "train" / "1.png").write_bytes(png_bytes)
    return fit_args(root, tmp)


def edited_folder(tmp: Path, edit: Callable[[Path], Any], *extra: str) -> list[str]:
    root = folder_data(tmp / "d")
    edit(root)
    return fit_args(root, tmp, *extra)


def loop_folder(path: Path) -> None:
    shutil.rmtree(path)
    path.symlink_to(path)


def all_ignore(root: Path, split: str) -> None:
    for mask in (root / "masks" / split).iterdir():
        cv2.imwrite(str(mask), np.full((40, 56), 255, np.uint8))


def three_class_checkpoint(tmp: Path) -> list[str]:
    """A Lightning checkpoint of a fit on a 3-class folder, resumed into a 10-class run."""
    main(fit_args(folder_data(tmp / "d"), tmp))
    (ckpt,) = (tmp / "run").rglob("*.ckpt")
    return ["fit", *SMALL, f"--ckpt_path={ckpt}", f"--trainer.default_root_dir={tmp / 'b'}"]


def plain_checkpoint(tmp: Path) -> Path:
    module = SegmentationModule("fpn", "resnet18", num_classes=10)
    path = tmp / "weights.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, path)
    return path


def written(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def small_fit(tmp: Path, *extra: str) -> list[str]:
    return ["fit", *SMALL, "--trainer.max_steps=1", f"--trainer.default_root_dir={tmp}", *extra]


def results_pair(tmp: Path, change: Callable[[dict[str, Any]], None]) -> list[str]:
    """``compare`` of a valid results file against one edited by ``change``."""
    from lmp_lightning.reports import ClassResults

    base = ClassResults(["a", "b"], [0.5, 0.25], [100, 10], 0.375).save(tmp / "base.json")
    data = json.loads(base.read_text())
    change(data)
    run = tmp / "run.json"
    run.write_text(json.dumps(data))
    return ["compare", str(base), str(run)]


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda d: d.__setitem__(key, value)


CASES = [
    # --- data files
    pytest.param(truncated_mask, r"cannot decode label file '.*1\.png'", id="truncated-mask-png"),
    pytest.param(lambda t: predict_folder(t, {"a.png": png(), "b.png": b"not an image"}),
                 r"cannot decode image file '.*b\.png'", id="non-image-png-in-predict-folder"),
    pytest.param(lambda t: fit_args(folder_data(t / "d", labelled=False), t,
                                    "--data.sampler=CropSampling"),
                 "needs labelled pixels", id="sampler-without-labelled-pixels"),
    pytest.param(lambda t: [*fit_args(folder_data(t / "d"), t), "--data.sampler=CropSampling",
                            "--data.sampler.points_per_class=0"],
                 "points_per_class must be >= 1", id="sampler-points-per-class-0"),
    pytest.param(lambda t: [*fit_args(folder_data(t / "d"), t),
                            "--trainer.callbacks+=lmp_lightning.callbacks.PerformanceAwareSampling"],
                 "add --data.sampler CropSampling", id="sampling-callback-without-sampler"),
    pytest.param(lambda t: [*fit_args(folder_data(t / "d"), t), "--data.batch_size=5"],
                 "--data.batch_size 5 is larger than the 4 training images",
                 id="batch-above-images"),
    pytest.param(lambda t: ["fit", "--model.lr=0.1", f"--trainer.default_root_dir={t}"],
                 r"--model\.lr \(model: lr: in a config file\) is --model\.optimizer\.lr now",
                 id="moved-model-lr-flag"),
    pytest.param(lambda t: ["fit", f"--config={yaml_file(t, {'model': {'poly_power': 0.9}})}",
                            f"--trainer.default_root_dir={t}"],
                 r"--model\.poly_power .* is --model\.lr_scheduler\.power now",
                 id="moved-poly-power-in-yaml"),
    pytest.param(lambda t: ["fit", "--config", "camvid/lmp", f"--trainer.default_root_dir={t}"],
                 "data set CamVid reads files: pass its data directory with --data.root DIR",
                 id="camvid-recipe-without-root"),
    pytest.param(lambda t: ["fit", f"--config={alias_bomb(t, 'model', 'model_kwargs')}",
                            f"--trainer.default_root_dir={t}"],
                 r"bomb\.yaml' expands to \d+ YAML nodes", id="yaml-alias-bomb-model-kwargs"),
    pytest.param(lambda t: ["fit", f"--config={alias_bomb(t, 'data', 'dataset_options')}",
                            f"--trainer.default_root_dir={t}"],
                 r"bomb\.yaml' expands to \d+ YAML nodes", id="yaml-alias-bomb-dataset-options"),
    pytest.param(lambda t: ["fit", "--model.model_kwargs",
                            alias_bomb(t, "x", "y").read_text().replace("\n", "\n  ")[3:],
                            f"--trainer.default_root_dir={t}"],
                 r"the value .* expands to \d+ YAML nodes", id="yaml-alias-bomb-inline"),
    # --- checkpoints and folders
    pytest.param(lambda t: ["validate", *SMALL, f"--ckpt_path={checkpoint(t, b'garbage')}"],
                 r"'.*broken\.ckpt' is not a readable checkpoint",
                 id="garbage-checkpoint-validate"),
    pytest.param(lambda t: ["fit", *SMALL, f"--ckpt_path={checkpoint(t, b'PK' + bytes(40))}"],
                 r"'.*broken\.ckpt' is not a readable checkpoint", id="truncated-checkpoint-fit"),
    pytest.param(lambda t: ["zoo", "export", str(checkpoint(t, b"garbage")), "--name", "x",
                            "--out", str(t / "out")],
                 r"'.*broken\.ckpt' is not a readable checkpoint", id="garbage-checkpoint-export"),
    pytest.param(export_into_existing, "refusing to write into non-empty", id="export-into-entry"),
    pytest.param(second_run_without_logger, "already holds the config.yaml of an earlier run",
                 id="second-run-without-logger"),
    # --- losses
    pytest.param(lambda t: lambda: InverseMedianFrequencyCrossEntropy(
                     per_image_counts=[[1.0, math.nan], [2.0, 3.0]]),
                 "per_image_counts", id="imf-nan-counts"),
    pytest.param(lambda t: lambda: InverseMedianFrequencyCrossEntropy(
                     per_image_counts=[[1.0, math.inf], [2.0, 3.0]]),
                 "per_image_counts", id="imf-inf-counts"),
    pytest.param(lambda t: lambda: CenterLoss()(
                     torch.zeros(1, 3, 4, 4), torch.zeros(1, 4, 4).long()),
                 r"CenterLoss needs the decoder features: call it as loss\(logits, target, "
                 r"features=\.\.\.\)", id="center-without-features"),
    # --- zoo
    pytest.param(lambda t: edited_card(t, lambda c: c["class_names"].reverse()),
                 r"sha256 mismatch for '.*card\.json'", id="card-reversed-classes"),
    pytest.param(lambda t: unpinned_bad_card(t, _set("std", [0, 0, 0])),
                 "std finite and > 0", id="card-zero-std"),
    pytest.param(lambda t: zoo_index(t, _set("path", 5)), "'path' must be a string",
                 id="index-path-not-a-string"),
    pytest.param(lambda t: zoo_index(t, lambda s: s["sha256"].__setitem__("card.json", 5)),
                 "'sha256' must map file names", id="index-digest-not-a-string"),
    pytest.param(lambda t: zoo_index(t, lambda s: s["sha256"].pop("card.json")),
                 r"must pin \['card.json'\]", id="index-card-not-pinned"),
    # --- data files: one line naming the file (issue 28)
    pytest.param(lambda t: mask_file(t, with_label(7)),
                 r"label file '.*train/1\.png' has values \[7\] outside", id="mask-label-8-bit"),
    pytest.param(lambda t: mask_file(t, with_label(3000, np.uint16)),
                 r"label file '.*train/1\.png' has values \[3000\]", id="mask-label-16-bit"),
    pytest.param(lambda t: mask_file(t, with_label(7), "val"),
                 r"label file '.*val/1\.png' has values \[7\]", id="mask-label-val"),
    pytest.param(lambda t: mask_file(t, np.zeros((30, 56), np.uint8)),
                 r"image '.*1\.png' is \(40, 56\) but its label file '.*1\.png' is \(30, 56\)",
                 id="mask-of-another-size"),
    pytest.param(tiny_image, r"image '.*1\.png' \(1x1 pixels\) cannot be scaled and cropped",
                 id="image-1x1"),
    pytest.param(bomb_mask, r"label file '.*1\.png' is refused: Image size \(400000000 pixels\)",
                 id="mask-decompression-bomb"),
    pytest.param(lambda t: edited_folder(t, lambda r: (r / "classes.txt").write_text(
                     "a\nb\nc\nignore: 100000000000\n")),
                 r"classes\.txt': ignore must be a non-negative label up to 65535",
                 id="ignore-label-huge"),
    pytest.param(lambda t: edited_folder(t, lambda r: (r / "classes.txt").write_bytes(
                     b"a\n\xff\xfe\nc\n")),
                 r"class file '.*classes\.txt' is not UTF-8", id="classes-not-utf8"),
    pytest.param(lambda t: edited_folder(t, lambda r: [loop_folder(r / "masks" / "val"),
                                                       loop_folder(r / "images" / "val")]),
                 r"image folder '.*images/val' is a broken or looping symlink",
                 id="looping-val-folder"),
    pytest.param(lambda t: edited_folder(t, lambda r: shutil.rmtree(r / "images" / "val")),
                 r"split 'val' is not available: FolderDataset has in this directory the splits "
                 r"\['train'\]", id="missing-val-split"),
    pytest.param(lambda t: edited_folder(t, lambda r: (r / "images" / "train" / "9.png").symlink_to(
                     r / "nowhere.png")),
                 r"image '.*train/9\.png' is a broken or looping symlink", id="dangling-symlink"),
    pytest.param(lambda t: edited_folder(t, lambda r: (r / "images" / "train" / "0a.png").mkdir()),
                 r"image '.*train/0a\.png' is not a file", id="folder-named-png"),
    pytest.param(lambda t: edited_folder(t, lambda r: all_ignore(r, "train")),
                 "the training epoch had no labelled pixels", id="every-train-mask-ignored"),
    pytest.param(lambda t: edited_folder(t, lambda r: all_ignore(r, "val"),
                                         "--trainer.max_steps=-1", "--trainer.max_epochs=1"),
                 "the val split has no labelled pixels", id="every-val-mask-ignored"),
    # --- flags and files (issue 28)
    pytest.param(three_class_checkpoint, "the checkpoint was trained with num_classes=3",
                 id="three-class-checkpoint-into-ten"),
    pytest.param(lambda t: small_fit(t, f"--ckpt_path={plain_checkpoint(t)}"),
                 r"is not a checkpoint of a Lightning fit .* use --model\.init_weights",
                 id="ckpt-path-not-a-lightning-checkpoint"),
    pytest.param(lambda t: small_fit(t, "--trainer.devices=0"), r"Trainer\(devices='0'\)",
                 id="devices-0"),
    pytest.param(lambda t: small_fit(t, "--trainer.max_epochs=-5"), "max_epochs. must be",
                 id="max-epochs-negative"),
    pytest.param(lambda t: small_fit(t, "--trainer.limit_train_batches=-1"),
                 "invalid value -1 for limit_train_batches", id="limit-train-batches-negative"),
    pytest.param(lambda t: small_fit(t, "--data.dataset.image_size=[0,80]"),
                 "height must be at least 32", id="image-size-0"),
    pytest.param(lambda t: small_fit(t, "--data.crop_size=100000"),
                 "crop_size must be at most 4096", id="crop-size-huge"),
    pytest.param(lambda t: small_fit(t, "--data.std=[0,0,0]"), r"std must lie within \[1e-6, 1e3\]",
                 id="std-0"),
    pytest.param(lambda t: small_fit(t, "--data.mean=[0.5,0.5]"),
                 r"--data\.mean: Expected a tuple with 3 elements", id="mean-of-two"),
    pytest.param(lambda t: small_fit(t, "--model.optimizer.lr=nan"),
                 r"--model\.optimizer\.lr=nan: not an argument .* or not a valid value",
                 id="lr-nan"),
    pytest.param(lambda t: small_fit(t, "--model.loss=lmp", "--model.loss.init_args.nope=3"),
                 r"--model\.loss\.nope=3: not an argument of the chosen class",
                 id="unknown-loss-argument"),
    pytest.param(lambda t: small_fit(t, "--ckpt_path=zoo:"), "--ckpt_path zoo: names no entry",
                 id="ckpt-path-zoo-empty"),
    pytest.param(lambda t: ["fit", "--config", str(written(t / "list.yaml", "- a\n- b\n"))],
                 r"list\.yaml' is not a mapping of sections", id="yaml-config-a-list"),
    pytest.param(lambda t: ["fit", *SMALL, f"--trainer.default_root_dir={written(t / 'f', '')}"],
                 r"--trainer\.default_root_dir '.*f' is a file", id="root-dir-a-file"),
    # --- results files (issue 28)
    pytest.param(lambda t: results_pair(t, lambda d: d["iou"].__setitem__(0, 2.0)),
                 r"the IoU of 'a' must be in \[0, 1\].*got 2\.0", id="results-iou-2"),
    pytest.param(lambda t: results_pair(t, lambda d: d["iou"].__setitem__(1, -1.0)),
                 r"the IoU of 'b' must be in \[0, 1\]", id="results-iou-negative"),
    pytest.param(lambda t: results_pair(t, lambda d: d["pixel_counts"].__setitem__(0, -5)),
                 r"the pixel count of 'a' must be an int >= 0", id="results-negative-count"),
    pytest.param(lambda t: results_pair(t, _set("miou", 0.9)),
                 r"miou 0\.9 is not the mean of the per-class IoU \(0\.375000\)",
                 id="results-miou-disagrees"),
    pytest.param(lambda t: results_pair(t, _set("miou", None)), "miou must be a number, got None",
                 id="results-miou-null"),
    pytest.param(lambda t: predict_folder(t, {"c.png": png(), "c_overlay.png": png()}),
                 r"'c\.png' and 'c_overlay\.png' would both write 'c_overlay\.png'",
                 id="predict-inputs-collide"),
]  # fmt: skip


@pytest.mark.parametrize(("prepare", "match"), CASES)
def test_bad_input(
    prepare: Callable[[Path], Any], match: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    made = prepare(tmp_path)
    capsys.readouterr()
    if callable(made):
        with pytest.raises((ValueError, TypeError), match=match):
            made()
        return
    with pytest.raises(SystemExit) as exit_info:
        main(made)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err[-3000:]
    lines = [line for line in err.strip().splitlines() if line.startswith("lmp-seg: error:")]
    assert len(lines) == 1 and re.search(match, lines[0]), err[-3000:]
    assert "Traceback" not in err


def eleven_classes(tmp: Path, split: str) -> Path:
    """A folder data set of 11 classes whose ``masks/<split>/1.png`` holds the raw label 11 (a
    12th class, or an ignore label that ``classes.txt`` does not declare)."""
    root = folder_data(tmp / "d")
    (root / "classes.txt").write_text("".join(f"class{i}\n" for i in range(11)))
    cv2.imwrite(str(root / "masks" / split / "1.png"), with_label(11))
    return root


def without_split(tmp: Path, split: str) -> list[str]:
    root = folder_data(tmp / "d")
    for kind in ("images", "masks"):
        shutil.rmtree(root / kind / split)
    return fit_args(root, tmp)


BEFORE_MODEL = [
    pytest.param(lambda t: fit_args(eleven_classes(t, "train"), t),
                 r"label file '.*masks/train/1\.png' has values \[11\] outside",
                 id="raw-label-11-of-11-classes-train"),
    pytest.param(lambda t: fit_args(eleven_classes(t, "val"), t),
                 r"label file '.*masks/val/1\.png' has values \[11\] outside",
                 id="raw-label-11-of-11-classes-val"),
    pytest.param(lambda t: without_split(t, "val"),
                 r"split 'val' is not available: .* no folder '.*images/val'",
                 id="no-val-folder"),
    pytest.param(lambda t: mask_file(t, np.zeros((30, 56), np.uint8)),
                 r"image '.*images/train/1\.png' is \(40, 56\) but its label file "
                 r"'.*masks/train/1\.png' is \(30, 56\)", id="train-mask-of-another-size"),
    pytest.param(lambda t: mask_file(t, np.zeros((40, 50), np.uint8), "val"),
                 r"image '.*images/val/1\.png' is \(40, 56\) but its label file "
                 r"'.*masks/val/1\.png' is \(40, 50\)", id="val-mask-of-another-size"),
]  # fmt: skip


@pytest.mark.parametrize(("prepare", "match"), BEFORE_MODEL)
def test_data_mistakes_stop_the_command_before_the_model_is_built(
    prepare: Callable[[Path], list[str]],
    match: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A mask label outside the classes, a missing split folder, a mask of another size than
    its image: one line naming the file (exit status 2), found when the data module is made,
    before the network is built (no encoder weights downloaded, no run folder written)."""
    import lmp_lightning.module

    built: list[str] = []
    build_model = lmp_lightning.module.build_model

    def spy(*args: Any, **kwargs: Any) -> Any:
        built.append(args[0])
        return build_model(*args, **kwargs)

    monkeypatch.setattr(lmp_lightning.module, "build_model", spy)
    args = prepare(tmp_path)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err[-3000:]
    lines = [line for line in err.strip().splitlines() if line.startswith("lmp-seg: error:")]
    assert len(lines) == 1 and re.search(match, lines[0]), err[-3000:]
    assert built == [], "the model was built before the data mistake was found"
    assert not (tmp_path / "run").exists()


def test_the_data_module_checks_the_splits_of_a_stage(tmp_path: Path) -> None:
    """From Python, ``check_files(stage)`` (and ``setup``) refuses a label outside the classes
    in the splits the stage reads, and only those: a folder without ``val`` still tests; a
    checked folder is remembered until a file changes; the folder data set's ``check_files``
    names a mask of another size."""
    from lmp_lightning.data import FolderDataset, SegmentationDataModule
    from lmp_lightning.errors import InputError

    root = folder_data(tmp_path / "c")
    for kind in ("images", "masks"):
        (root / kind / "val").rename(root / kind / "test")
    data = SegmentationDataModule(dataset="folder", root=str(root))
    data.check_files("test")  # a folder without val still tests
    with pytest.raises(InputError, match=r"no folder '.*images/val'; add it"):
        data.check_files("fit")
    root = eleven_classes(tmp_path / "a", "val")
    data = SegmentationDataModule(dataset="folder", root=str(root))
    with pytest.raises(InputError, match=r"masks/val/1\.png' has values \[11\]"):
        data.check_files("fit")
    with pytest.raises(InputError, match=r"masks/val/1\.png' has values \[11\]"):
        SegmentationDataModule(dataset="folder", root=str(root)).setup("validate")
    root = folder_data(tmp_path / "b")
    SegmentationDataModule(dataset="folder", root=str(root)).check_files("fit")  # remembered
    bad = root / "masks" / "train" / "0.png"
    good = cv2.imread(str(bad), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(bad), np.full_like(good, 9))  # the same size, a changed file
    with pytest.raises(InputError, match=r"masks/train/0\.png' has values \[9\]"):
        SegmentationDataModule(dataset="folder", root=str(root)).check_files("fit")
    cv2.imwrite(str(bad), np.zeros((40, 50), np.uint8))
    with pytest.raises(InputError, match=r"masks/train/0\.png' is \(40, 50\)"):
        FolderDataset(root, "train").check_files(labels=False)


def test_predict_reads_16_bit_grey_like_training(tmp_path: Path) -> None:
    """One image reader for every path: a 16-bit grey PNG is scaled to 8 bits, not clipped."""
    from lmp_lightning.data._files import read_rgb
    from lmp_lightning.data.image_folder import ImageFolder
    from lmp_lightning.data.transforms import eval_transform

    grey = (np.arange(20 * 24, dtype=np.uint16).reshape(20, 24) * 130).astype(np.uint16)
    folder = tmp_path / "images"
    folder.mkdir()
    cv2.imwrite(str(folder / "g.png"), grey)
    raw = ImageFolder(folder, eval_transform())[0]["raw"].numpy()
    np.testing.assert_array_equal(raw, read_rgb(folder / "g.png"))
    np.testing.assert_array_equal(raw[..., 0], (grey >> 8).astype(np.uint8))  # scaled, not clipped


def test_predict_names_files_that_share_a_stem_apart(tmp_path: Path) -> None:
    args = predict_folder(tmp_path, {"x.png": png(), "x.jpg": png(), "y.png": png()})
    main(args)
    written = sorted(p.name for p in (tmp_path / "predictions").iterdir())
    assert written == [
        "x_jpg.png",
        "x_jpg_overlay.png",
        "x_png.png",
        "x_png_overlay.png",
        "y.png",
        "y_overlay.png",
    ]


def test_validation_images_of_mixed_sizes_are_padded_per_batch(tmp_path: Path) -> None:
    root = folder_data(tmp_path / "data")
    for i, (h, w) in enumerate([(40, 56), (30, 44)]):
        image = np.zeros((h, w, 3), np.uint8)
        mask = np.zeros((h, w), np.uint8)
        mask[:, w // 2 :] = 1
        cv2.imwrite(str(root / "images" / "val" / f"{i}.png"), image)
        cv2.imwrite(str(root / "masks" / "val" / f"{i}.png"), mask)
    from lmp_lightning.cli import run_cli

    cli = run_cli(
        [
            "validate",
            "--data.dataset=folder",
            f"--data.root={root}",
            "--data.val_batch_size=2",
            "--model.arch=fpn",
            "--model.encoder_name=resnet18",
            "--trainer.logger=false",
            f"--trainer.default_root_dir={tmp_path}",
            "--trainer.enable_progress_bar=false",
        ]
    )
    results = cli.model.class_results("val")
    # padding (ignore_index) is not counted: 40*56 + 30*44 labelled pixels in all
    assert sum(results.pixel_counts) == 40 * 56 + 30 * 44


def test_sliding_inference_sees_only_tiles(tmp_path: Path) -> None:
    """Predicting a large image with ``--model.inference sliding``, the network never sees more
    than a tile: its memory is bounded by the tile, not the image."""
    seen: list[tuple[int, int]] = []

    class Spy(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append((int(x.shape[-2]), int(x.shape[-1])))
            return torch.zeros(x.shape[0], 10, *x.shape[-2:])

    module = SegmentationModule(
        "fpn", "resnet18", num_classes=10, inference="sliding", tile_crop=64
    ).eval()
    module.model = Spy()
    with torch.no_grad():
        batch = {"image": torch.zeros(1, 3, 300, 400), "size": torch.tensor([[300, 400]])}
        labels = module.predict_step(batch, 0)
    assert labels.shape == (1, 300, 400)
    assert seen and max(h for h, _ in seen) <= 64 and max(w for _, w in seen) <= 64


# --- files a user is handed are data: nothing in them runs
class _Payload:
    """Pickles as a call of ``os.system``: unpickling it with ``weights_only=False`` runs it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        import os

        return (os.system, (f"touch {self.marker}",))


def evil_checkpoint(tmp: Path) -> Path:
    """A checkpoint of a real module whose pickle also calls ``os.system`` when loaded."""
    module = SegmentationModule("fpn", "resnet18", num_classes=10)
    path = tmp / "evil.ckpt"
    torch.save(
        {
            "state_dict": module.state_dict(),
            "hyper_parameters": dict(module.hparams),
            "payload": _Payload(tmp / "marker"),
        },
        path,
    )
    return path


def evil_encoder_file(tmp: Path) -> Path:
    path = tmp / "encoder.pth"
    torch.save({"conv1.weight": torch.zeros(1), "payload": _Payload(tmp / "marker")}, path)
    return path


EVIL = [
    pytest.param(lambda t: ["fit", *SMALL, "--trainer.max_steps=1",
                            f"--model.init_weights={evil_checkpoint(t)}",
                            f"--trainer.default_root_dir={t}"], id="fit-init-weights"),
    pytest.param(lambda t: ["fit", *SMALL, "--trainer.max_steps=1",
                            f"--ckpt_path={evil_checkpoint(t)}",
                            f"--trainer.default_root_dir={t}"], id="fit-ckpt-path"),
    pytest.param(lambda t: ["validate", *SMALL, f"--ckpt_path={evil_checkpoint(t)}",
                            f"--trainer.default_root_dir={t}"], id="validate-ckpt-path"),
    pytest.param(lambda t: ["zoo", "export", str(evil_checkpoint(t)), "--name", "x",
                            "--out", str(t / "out")], id="zoo-export"),
    pytest.param(lambda t: ["fit", *SMALL, "--trainer.max_steps=1",
                            f"--model.encoder_weights={evil_encoder_file(t)}",
                            f"--trainer.default_root_dir={t}"], id="fit-encoder-weights-file"),
]  # fmt: skip


@pytest.mark.parametrize("prepare", EVIL)
def test_no_code_runs_from_a_checkpoint(
    prepare: Callable[[Path], list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each entry point that reads a file a user is handed refuses a pickle that calls
    ``os.system``, with one line, before anything in it runs."""
    args = prepare(tmp_path)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    err = capsys.readouterr().err
    assert not (tmp_path / "marker").exists(), "the checkpoint's payload ran"
    assert exit_info.value.code == 2, err[-3000:]
    lines = [line for line in err.strip().splitlines() if line.startswith("lmp-seg: error:")]
    assert len(lines) == 1 and "refused, nothing in it was run" in lines[0], err[-3000:]
    assert "GLOBAL posix.system" in lines[0]


def test_no_code_runs_from_resume_or_class_statistics(tmp_path: Path) -> None:
    """The two readers not behind a flag: Lightning's resume (through the CLI's checkpoint
    plugin) and the sampler's cached class statistics (an unreadable cache is rebuilt)."""
    from lmp_lightning.checkpoints import AtomicCheckpointIO
    from lmp_lightning.errors import InputError
    from lmp_lightning.sampling.class_statistics import ClassStatistics

    path = evil_checkpoint(tmp_path)
    with pytest.raises(InputError, match="refused, nothing in it was run"):
        AtomicCheckpointIO().load_checkpoint(path)
    with pytest.raises(InputError, match="refused, nothing in it was run"):
        ClassStatistics.load(path)
    assert not (tmp_path / "marker").exists()


def test_predict_writes_nothing_when_one_output_exists(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every output name is checked before the first is written."""
    args = predict_folder(tmp_path, {"a.png": png(), "b.png": png()})
    out = tmp_path / "predictions"
    out.mkdir()
    (out / "b_overlay.png").write_bytes(b"the user's")
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    assert "b_overlay.png exists" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["b_overlay.png"]
    assert (out / "b_overlay.png").read_bytes() == b"the user's"
