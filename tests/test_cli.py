"""End to end through the ``lmp-seg`` CLI: every shipped config, every loss by its flag, DDP."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from lightning import Callback, LightningModule, Trainer

from lmp_lightning.cli import main, run_cli
from lmp_lightning.data import SegmentationDataModule
from lmp_lightning.data.sets import Synthetic
from lmp_lightning.losses import LOSSES, LossMaxPooling
from lmp_lightning.module import SegmentationModule
from tests.cli_args import TINY

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").rglob("*.yaml"))


ONE_STEP = ["--trainer.max_steps=1", "--trainer.max_epochs=1", "--trainer.limit_val_batches=1"]


def _checkpoints(root: Path) -> list[Path]:
    return sorted(root.rglob("*.ckpt"))


# A shipped recipe runs here on the embedded data with a small encoder and no download: its
# model, loss, optimiser, callbacks and trainer settings are what the test exercises.
OFFLINE_SMALL = [
    "--data.dataset=synthetic",
    "--data.root=null",
    "--data.num_workers=0",
    "--data.pin_memory=false",
    "--model.encoder_name=resnet18",
    "--model.encoder_weights=null",
    "--trainer.check_val_every_n_epoch=1",
    "--trainer.val_check_interval=1.0",
]

SPARSE_LALL = ["--model.loss.init_args.backend=sparse"]
"""The locally adaptive loss's default backend, "auto", compiles on its first call of each kernel
size and shape (about a minute on a cold cache): the default run trains it with the sparse
backend, and a slow test trains the default."""


@pytest.mark.parametrize(
    "config", CONFIGS, ids=[str(c.relative_to(ROOT / "configs")) for c in CONFIGS]
)
def test_shipped_config_fits_then_validates(config: Path, tmp_path: Path) -> None:
    common = [
        "--config",
        str(config),
        *OFFLINE_SMALL,
        *TINY,
        f"--trainer.default_root_dir={tmp_path}",
        *(SPARSE_LALL if "lall" in config.name else []),
    ]
    main(["fit", *common, *ONE_STEP])
    checkpoints = _checkpoints(tmp_path)
    assert checkpoints, "fit wrote no checkpoint"
    cli = run_cli(
        ["validate", *common, "--trainer.limit_val_batches=1", f"--ckpt_path={checkpoints[0]}"]
    )
    miou = cli.trainer.callback_metrics["val/mIoU"]
    assert 0.0 <= float(miou) <= 1.0


@pytest.mark.parametrize("loss", sorted(cls.__name__ for cls in LOSSES.values()))
def test_every_loss_by_its_flag_trains_without_nan(loss: str, tmp_path: Path) -> None:
    cli = run_cli(
        [
            "fit",
            *TINY,
            "--trainer.fast_dev_run=1",
            "--model.encoder_name=resnet18",
            f"--trainer.default_root_dir={tmp_path}",
            "--model.loss",
            loss,
            *(SPARSE_LALL if loss == "LocallyAdaptiveLoss" else []),
        ]
    )
    assert type(cli.model.loss).__name__ == loss
    value = float(cli.trainer.callback_metrics["train/loss"])
    assert math.isfinite(value) and value > 0


@pytest.mark.slow
def test_lall_default_backend_compiles_in_a_fit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--model.loss=lall`` with no backend trains through the compiled stages."""
    from lmp_lightning.losses.functional import locally_adaptive

    compiled = locally_adaptive._compiled
    stages: list[str] = []
    monkeypatch.setattr(locally_adaptive, "_NO_COMPILER", {})
    monkeypatch.setattr(
        locally_adaptive, "_compiled", lambda stage: stages.append(stage) or compiled(stage)
    )
    cli = run_cli(
        [
            "fit",
            *TINY,
            "--trainer.fast_dev_run=1",
            "--model.encoder_name=resnet18",
            f"--trainer.default_root_dir={tmp_path}",
            "--model.loss=lall",
        ]
    )
    assert cli.model.loss.backend == "auto"
    assert set(stages) == set(locally_adaptive._STAGES)
    assert math.isfinite(float(cli.trainer.callback_metrics["train/loss"]))


@pytest.mark.parametrize(
    "mode",
    [
        ["--model.inference=whole"],
        ["--model.inference=efficient", "--model.num_tiles=3"],
        ["--model.inference=optimized", "--model.num_tiles=2", "--model.tile_overlap=16"],
        ["--model.inference=sliding", "--model.tile_crop=48", "--model.tile_stride=32"],
    ],
    ids=lambda m: m[0].split("=")[1],
)
def test_inference_modes_validate_and_predict(mode: list[str], tmp_path: Path) -> None:
    args = [*TINY, *mode, "--trainer.limit_val_batches=1", f"--trainer.default_root_dir={tmp_path}"]
    cli = run_cli(["validate", *args, "--model.loss=CenterLoss"])
    assert 0.0 <= float(cli.trainer.callback_metrics["val/mIoU"]) <= 1.0
    cli = run_cli(["predict", *args, "--trainer.limit_predict_batches=1"])
    predictions = cli.trainer.predict_loop.predictions
    assert predictions and all(labels.shape == (1, 64, 80) for labels in predictions)


def test_loss_arguments_by_flag(tmp_path: Path) -> None:
    cli = run_cli(
        [
            "fit",
            *TINY,
            "--trainer.fast_dev_run=1",
            f"--trainer.default_root_dir={tmp_path}",
            "--model.loss",
            "LossMaxPooling",
            "--model.loss.p",
            "1.7",
            "--model.loss.m_pixels",
            "100",
        ]
    )
    assert (cli.model.loss.p, cli.model.loss.m_pixels) == (1.7, 100)


@pytest.mark.parametrize("backend", ["auto", "sparse", "compiled", None])
@pytest.mark.parametrize("source", ["flag", "yaml", "python"])
def test_lall_backend_by_flag_and_yaml(source: str, backend: str | None, tmp_path: Path) -> None:
    """``backend`` of the locally adaptive loss reaches the loss alike from a flag, from YAML
    and from Python, and is ``"auto"`` when none is given (parsed and instantiated only: the
    compiled backend compiles on its first call)."""
    from lmp_lightning.cli import SegmentationCLI
    from lmp_lightning.data import SegmentationDataModule as Data
    from lmp_lightning.losses import LocallyAdaptiveLoss

    if source == "python":
        loss = LocallyAdaptiveLoss() if backend is None else LocallyAdaptiveLoss(backend=backend)
        assert loss.backend == (backend or "auto")
        return
    if source == "flag":
        loss_args = ["--model.loss=lall"]
        loss_args += [] if backend is None else [f"--model.loss.init_args.backend={backend}"]
    else:
        init = "{}" if backend is None else f"{{backend: {backend}}}"
        config = tmp_path / "loss.yaml"
        config.write_text(f"model:\n  loss:\n    class_path: lall\n    init_args: {init}\n")
        loss_args = [f"--config={config}"]
    cli = SegmentationCLI(SegmentationModule, Data, args=[*TINY, *loss_args], run=False)
    assert type(cli.model.loss) is LocallyAdaptiveLoss  # the short name's class itself
    assert cli.model.loss.backend == (backend or "auto")


@pytest.mark.parametrize("source", ["flag", "yaml", "python"])
def test_channels_last_and_reduction_by_flag_yaml_and_python(source: str, tmp_path: Path) -> None:
    """``--model.channels_last`` and a loss's ``reduction`` reach the module alike from a flag,
    from YAML and from Python (parsed and instantiated only)."""
    from lmp_lightning.cli import SegmentationCLI
    from lmp_lightning.data import SegmentationDataModule as Data

    if source == "python":
        model = SegmentationModule(
            "fpn", "resnet18", num_classes=3, loss=LossMaxPooling(reduction="sum"),
            channels_last=True,
        )  # fmt: skip
    else:
        if source == "flag":
            args = ["--model.channels_last=true", "--model.loss=lmp",
                    "--model.loss.init_args.reduction=sum"]  # fmt: skip
        else:
            config = tmp_path / "model.yaml"
            config.write_text(
                "model:\n  channels_last: true\n  loss:\n    class_path: lmp\n"
                "    init_args: {reduction: sum}\n"
            )
            args = [f"--config={config}"]
        model = SegmentationCLI(SegmentationModule, Data, args=[*TINY, *args], run=False).model
    assert model.channels_last and model.loss.reduction == "sum"
    conv = next(m for m in model.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)


def test_data_links_to_model(tmp_path: Path) -> None:
    cli = run_cli(
        ["fit", *TINY, "--trainer.fast_dev_run=1", f"--trainer.default_root_dir={tmp_path}"]
    )
    data = cli.datamodule
    assert cli.model.num_classes == data.num_classes
    assert cli.model.class_names == list(data.class_names)
    assert cli.model.ignore_index == data.ignore_index == cli.model.loss.ignore_index


def test_print_config_is_reusable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(
            [
                "fit",
                "--config",
                str(ROOT / "configs/demo.yaml"),
                "--model.loss=LossMaxPooling",
                "--print_config",
            ]
        )
    config = tmp_path / "printed.yaml"
    config.write_text(capsys.readouterr().out)
    assert "LossMaxPooling" in config.read_text()
    cli = run_cli(
        [
            "fit",
            "--config",
            str(config),
            *TINY,
            "--trainer.fast_dev_run=1",
            f"--trainer.default_root_dir={tmp_path}",
        ]
    )
    assert type(cli.model.loss).__name__ == "LossMaxPooling"


def test_checkpoint_of_another_architecture(tmp_path: Path) -> None:
    main(["fit", *TINY, *ONE_STEP, "--model.arch=fpn", f"--trainer.default_root_dir={tmp_path}"])
    checkpoint = next(c for c in _checkpoints(tmp_path) if c.name != "last.ckpt")
    # Through the CLI, the network comes from the checkpoint; a typed flag that disagrees is
    # an error naming both values (tests/test_cli_semantics.py), an untyped one takes it.
    cli = run_cli(
        ["validate", *TINY, f"--ckpt_path={checkpoint}", f"--trainer.default_root_dir={tmp_path}"]
    )
    assert cli.model.hparams.arch == "fpn"
    # From Python, a model of another architecture is refused with one clear message.
    data = SegmentationDataModule(Synthetic(num_val_images=1, image_size=(64, 80)))
    model = SegmentationModule("unet", "resnet18", num_classes=data.num_classes)
    trainer = Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, default_root_dir=tmp_path
    )
    with pytest.raises(ValueError, match="trained with arch='fpn' but this model has arch='unet'"):
        trainer.validate(model, datamodule=data, ckpt_path=checkpoint)


def test_unknown_loss_lists_valid_names(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *TINY, "--model.loss", "NoSuchLoss"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "unknown loss 'NoSuchLoss'" in err and "LossMaxPooling (lmp)" in err
    assert "Traceback" not in err


def test_loss_by_short_name(tmp_path: Path) -> None:
    cli = run_cli(
        [
            "fit",
            *TINY,
            "--trainer.fast_dev_run=1",
            f"--trainer.default_root_dir={tmp_path}",
            "--model.loss",
            "bootstrap",
            "--model.loss.k",
            "0.1",
        ]
    )
    from lmp_lightning.losses import BootstrappedCrossEntropy

    assert isinstance(cli.model.loss, BootstrappedCrossEntropy) and cli.model.loss.k == 0.1


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("--model.arch=nonet", "unknown architecture 'nonet'; valid names are ["),
        ("--model.encoder_name=resnet7", "unknown encoder 'resnet7'; valid names are ["),
        ("--data.dataset=nodata", "unknown data set 'nodata'; valid names are ['camvid', "),
    ],
)
def test_configuration_errors_are_one_line(
    flag: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "fit",
                *TINY,
                "--trainer.fast_dev_run=1",
                f"--trainer.default_root_dir={tmp_path}",
                flag,
            ]
        )
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"lmp-seg: error: {message}" in err and "Traceback" not in err


def test_model_and_data_disagree_on_classes(tmp_path: Path) -> None:
    data = SegmentationDataModule(
        Synthetic(num_train_images=2, num_val_images=1, image_size=(64, 80)),
        crop_size=64,
        batch_size=2,
    )
    model = SegmentationModule("fpn", "resnet18", num_classes=3)
    trainer = Trainer(
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        fast_dev_run=1,
        default_root_dir=tmp_path,
    )
    with pytest.raises(ValueError, match="the model has num_classes=3 but the data has 10"):
        trainer.fit(model, datamodule=data)


def test_two_process_cpu_ddp(tmp_path: Path) -> None:
    """Lightning's own DDP on CPU (gloo), two processes, a few steps, through the real command."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "lmp_lightning.cli",
            "fit",
            *TINY,
            "--data.dataset.num_train_images=8",
            "--trainer.devices=2",
            "--trainer.strategy=ddp",
            "--trainer.max_steps=2",
            "--trainer.max_epochs=1",
            "--trainer.limit_val_batches=1",
            "--model.loss=LossMaxPooling",
            f"--trainer.default_root_dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "distributed_backend=gloo" in out.stderr + out.stdout
    assert "All distributed processes registered" in out.stderr + out.stdout
    checkpoint = torch.load(_checkpoints(tmp_path)[0], map_location="cpu", weights_only=False)
    assert checkpoint["global_step"] == 2


class InterruptBeforeEpoch2(Callback):
    """Stops a fit with an error at the start of its third epoch, as a killed job would."""

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.current_epoch == 2:
            raise RuntimeError("simulated interruption")


def _epoch_progress(ckpt: Path) -> dict[str, int]:
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    return dict(state["loops"]["fit_loop"]["epoch_progress"]["total"])


@pytest.mark.parametrize("config", ["demo.yaml", "camvid/lmp.yaml"])
def test_interrupted_fit_resumes_from_last_checkpoint(config: str, tmp_path: Path) -> None:
    """The shipped recipes write last.ckpt at every epoch end, not only when training ends, so
    an interrupted run resumes where it stopped and finishes with the full step count."""
    common = [
        "--config",
        str(ROOT / "configs" / config),
        *OFFLINE_SMALL,
        *TINY,
        "--trainer.max_epochs=3",
        "--trainer.limit_val_batches=1",
        f"--trainer.default_root_dir={tmp_path}",
    ]
    with pytest.raises(RuntimeError, match="simulated interruption"):
        run_cli(["fit", *common, "--trainer.callbacks+=tests.test_cli.InterruptBeforeEpoch2"])
    (last,) = tmp_path.rglob("last.ckpt")
    assert _epoch_progress(last)["processed"] == 2  # written at the end of the second epoch
    steps_per_epoch = torch.load(last, map_location="cpu", weights_only=False)["global_step"] // 2
    cli = run_cli(["fit", *common, f"--ckpt_path={last}"])
    assert (cli.trainer.current_epoch, cli.trainer.global_step) == (3, 3 * steps_per_epoch)
    newest = max(tmp_path.rglob("last.ckpt"), key=lambda p: p.stat().st_mtime)
    assert _epoch_progress(newest)["processed"] == 3


@pytest.mark.parametrize(
    "config", CONFIGS, ids=[str(c.relative_to(ROOT / "configs")) for c in CONFIGS]
)
def test_shipped_config_checkpoints_during_training(config: Path) -> None:
    """Every recipe has a ModelCheckpoint that keeps last.ckpt up to date while training: at
    every epoch end, or every N steps for the iteration-based recipes."""
    import yaml

    callbacks = yaml.safe_load(config.read_text())["trainer"].get("callbacks") or []
    periodic = [
        c.get("init_args") or {}
        for c in callbacks
        if c["class_path"].endswith("ModelCheckpoint")
        and (c.get("init_args") or {}).get("save_last")
        and (c.get("init_args") or {}).get("save_top_k", 1) != 0
    ]
    assert periodic, f"{config}: no ModelCheckpoint with save_last that saves during training"
    args = periodic[0]
    assert args.get("save_on_train_epoch_end") or args.get("every_n_train_steps"), args


def test_a_demo_run_names_checkpoints_for_the_shell_and_shows_its_predictions(
    tmp_path: Path,
) -> None:
    """The demo recipe with a logger: checkpoint names carry the metric and no '=', the learning
    rate is logged, and the first validation images are drawn as image | labels | prediction."""
    import csv

    import numpy as np
    from PIL import Image

    from lmp_lightning.callbacks import label_palette

    cli = run_cli(
        [
            "fit",
            "--config",
            str(ROOT / "configs/demo.yaml"),
            *TINY,
            "--trainer.max_epochs=1",
            "--trainer.log_every_n_steps=1",
            f"--trainer.default_root_dir={tmp_path}",
        ]
    )
    folder = Path(cli.trainer.log_dir)
    names = sorted(p.name for p in folder.rglob("*.ckpt"))
    assert names[0].startswith("best-epoch0-step2-miou0.") and "=" not in "".join(names)
    assert names[1:] == ["last.ckpt", "latest-epoch0-step2.ckpt"]
    with open(folder / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    lrs = [float(row["lr-SGD"]) for row in rows if row.get("lr-SGD")]
    assert lrs and lrs[0] == pytest.approx(0.02)
    panels = sorted((folder / "val_images").glob("step2-*.png"))
    assert [p.name for p in panels] == ["step2-0.png", "step2-1.png"]  # two val images
    panel = np.asarray(Image.open(panels[0]))
    batch = next(iter(cli.datamodule.val_dataloader()))
    mask = batch["mask"][0].numpy()
    height, width = mask.shape
    assert panel.shape == (height, 3 * width, 3)
    assert np.array_equal(panel[:, width : 2 * width], label_palette()[mask])


def test_a_configured_validation_images_callback_replaces_the_default(tmp_path: Path) -> None:
    from lmp_lightning.callbacks import ValidationImages

    cli = run_cli(
        [
            "fit",
            *TINY,
            "--trainer.max_epochs=1",
            "--trainer.limit_train_batches=1",
            "--trainer.limit_val_batches=1",
            "--trainer.logger=true",
            f"--trainer.default_root_dir={tmp_path}",
            "--trainer.callbacks+=lmp_lightning.callbacks.ValidationImages",
            "--trainer.callbacks.num_images=1",
        ]
    )
    (images,) = [cb for cb in cli.trainer.callbacks if isinstance(cb, ValidationImages)]
    assert images.num_images == 1
    (png,) = tmp_path.rglob("val_images/*.png")  # one validation, one image
    assert png.name == f"step{cli.trainer.global_step}-0.png"
