"""What the user typed is what runs: checkpoints, short names in flags and files, interrupts,
training that trains nothing, and which errors are one line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from lightning import Callback, LightningModule, Trainer

from lmp_lightning.cli import SegmentationCLI, main, run_cli
from lmp_lightning.data import SegmentationDataModule
from lmp_lightning.module import SegmentationModule
from lmp_lightning.zoo import export_checkpoint
from tests.cli_args import TINY

ROOT = Path(__file__).resolve().parents[1]
SMALL = [*TINY, "--model.arch=fpn", "--model.encoder_name=resnet18", "--trainer.logger=false"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint of a two-step fit of an FPN / ResNet-18 at lr 0.01."""
    out = tmp_path_factory.mktemp("fit")
    run_cli(["fit", *SMALL, "--trainer.max_steps=2", f"--trainer.default_root_dir={out}"])
    (path,) = out.rglob("*.ckpt")
    return path


def test_validate_keeps_the_typed_inference_flags(checkpoint: Path, tmp_path: Path) -> None:
    cli = run_cli(
        [
            "validate",
            *TINY,
            "--trainer.logger=false",
            f"--trainer.default_root_dir={tmp_path}",
            f"--ckpt_path={checkpoint}",
            "--model.inference=sliding",
            "--model.tile_crop=48",
            "--trainer.limit_val_batches=1",
        ]
    )
    hp = cli.model.hparams
    assert (hp.inference, hp.tile_crop) == ("sliding", 48)
    assert (hp.arch, hp.encoder_name) == ("fpn", "resnet18")  # from the checkpoint


def test_a_typed_architecture_that_disagrees_is_one_line(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "validate",
                *TINY,
                f"--trainer.default_root_dir={tmp_path}",
                f"--ckpt_path={checkpoint}",
                "--model.arch=unet",
            ]
        )
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--model.arch is 'unet' but the checkpoint" in err and "arch='fpn'" in err


def test_a_resumed_fit_takes_the_typed_learning_rate(checkpoint: Path, tmp_path: Path) -> None:
    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)
    assert saved["lr_schedulers"][0]["base_lrs"] == [0.01]
    cli = run_cli(
        [
            "fit",
            *SMALL,
            "--trainer.max_steps=3",
            f"--trainer.default_root_dir={tmp_path}",
            f"--ckpt_path={checkpoint}",
            "--model.optimizer.lr=0.5",
            "--model.optimizer.momentum=0.5",
        ],
    )
    group = cli.trainer.optimizers[0].param_groups[0]
    assert group["initial_lr"] == pytest.approx(0.5) and group["momentum"] == 0.5
    assert cli.trainer.lr_scheduler_configs[0].scheduler.base_lrs == [pytest.approx(0.5)]


def test_short_names_in_a_config_file(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"model": {"loss": "lmp"}}))
    cli = run_cli(
        [
            "fit",
            *SMALL,
            "--trainer.fast_dev_run=1",
            f"--trainer.default_root_dir={tmp_path}",
            f"--config={config}",
            "--model.loss.p=2.0",
        ]
    )
    from lmp_lightning.losses import LossMaxPooling

    assert isinstance(cli.model.loss, LossMaxPooling) and cli.model.loss.p == 2.0
    assert cli.model.run_config()["loss"]["class_path"] == "lmp_lightning.losses.lmp.LossMaxPooling"
    config.write_text(
        yaml.safe_dump({"model": {"loss": {"class_path": "bootstrap", "init_args": {"k": 0.5}}}})
    )
    cli = run_cli(
        [
            "fit",
            *SMALL,
            "--trainer.fast_dev_run=1",
            f"--trainer.default_root_dir={tmp_path}",
            f"--config={config}",
        ]
    )
    from lmp_lightning.losses import BootstrappedCrossEntropy

    assert type(cli.model.loss) is BootstrappedCrossEntropy and cli.model.loss.k == 0.5


def test_zoo_checkpoint_in_a_config_file(tmp_path: Path) -> None:
    module = SegmentationModule("fpn", "resnet18", num_classes=10)
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, ckpt)
    entry = export_checkpoint(ckpt, "tiny", tmp_path / "entry")
    config = tmp_path / "validate.yaml"
    config.write_text(yaml.safe_dump({"ckpt_path": f"zoo:{entry}"}))
    cli = run_cli(
        [
            "validate",
            *TINY,
            "--trainer.logger=false",
            f"--trainer.default_root_dir={tmp_path}",
            f"--config={config}",
            "--trainer.limit_val_batches=1",
        ]
    )
    assert cli.model.hparams.arch == "fpn"
    torch.testing.assert_close(
        cli.model.model.segmentation_head[0].weight, module.model.segmentation_head[0].weight
    )


def test_unknown_loss_is_one_line_with_the_valid_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"model": {"loss": "nope"}}))
    for args in (["--model.loss", "nope"], [f"--config={config}"]):
        with pytest.raises(SystemExit) as exit_info:
            main(["fit", *TINY, *args])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert "unknown loss 'nope'" in err and "LossMaxPooling (lmp)" in err
        assert len(err.strip().splitlines()) == 2  # the message and the traceback hint


class Marker(Callback):
    """Writes the file named by ``LMP_TEST_MARKER`` once training is under way."""

    def on_train_batch_end(self, trainer: Trainer, *args: object) -> None:
        if trainer.global_step >= 2:
            Path(os.environ["LMP_TEST_MARKER"]).touch()


@pytest.mark.parametrize(
    ("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["sigterm", "ctrl-c"]
)
def test_an_interrupted_fit_saves_last_ckpt_and_exits_non_zero(
    signum: int, status: int, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    args = [
        sys.executable,
        "-m",
        "lmp_lightning.cli",
        "fit",
        *SMALL,
        "--trainer.max_epochs=10000",
        f"--trainer.default_root_dir={tmp_path}",
        "--trainer.callbacks+=tests.test_cli_semantics.Marker",
        "--trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint",
        f"--trainer.callbacks.dirpath={tmp_path / 'checkpoints'}",
        "--trainer.callbacks.save_last=true",
    ]
    env = {**os.environ, "LMP_TEST_MARKER": str(marker), "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(args, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert marker.exists(), process.stderr.read() if process.stderr else ""
    process.send_signal(signum)
    _, err = process.communicate(timeout=120)
    assert process.returncode == status, err[-2000:]
    assert "`weights_only` was not set" not in err  # the interrupt's save says what it saves
    last = tmp_path / "checkpoints" / "last.ckpt"
    saved = torch.load(last, map_location="cpu", weights_only=True)  # read as data
    assert saved["global_step"] >= 2 and saved["optimizer_states"]  # a whole checkpoint


class MarkInValidation(Callback):
    """Writes ``LMP_TEST_MARKER`` in the first validation of the fit (not the sanity check) and
    makes each of its batches slow, so that a signal lands inside it."""

    def on_validation_batch_end(self, trainer: Trainer, *args: object) -> None:
        if not trainer.sanity_checking and trainer.current_epoch == 0:
            Path(os.environ["LMP_TEST_MARKER"]).touch()
            time.sleep(1.0)


class MarkInLastSave(Callback):
    """Writes ``LMP_TEST_MARKER`` while the last epoch's checkpoint is saved, and waits there."""

    def on_save_checkpoint(self, trainer: Trainer, *args: object) -> None:
        if trainer.current_epoch == trainer.max_epochs - 1:
            Path(os.environ["LMP_TEST_MARKER"]).touch()
            time.sleep(3.0)


def _signal_fit(tmp_path: Path, signum: int, callback: str, epochs: int) -> tuple[int, str]:
    """A fit of ``epochs`` epochs with best-*/latest-*/last.ckpt, signalled once ``callback``
    writes its marker; returns the exit status and stderr."""
    marker = tmp_path / "marker"
    checkpoints = [
        {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint", "init_args": args}
        for args in (
            {"dirpath": str(tmp_path / "ckpt"), "monitor": "val/mIoU", "mode": "max",
             "filename": "best-epoch{epoch}", "auto_insert_metric_name": False},
            {"dirpath": str(tmp_path / "ckpt"), "filename": "latest-epoch{epoch}",
             "auto_insert_metric_name": False, "save_last": True},
        )
    ]  # fmt: skip
    config = tmp_path / "checkpoints.yaml"
    config.write_text(yaml.safe_dump({"trainer": {"callbacks": checkpoints}}))
    args = [
        sys.executable, "-m", "lmp_lightning.cli", "fit", f"--config={config}", *SMALL,
        "--data.dataset.num_val_images=6", "--data.val_batch_size=1",
        f"--trainer.max_epochs={epochs}",
        f"--trainer.default_root_dir={tmp_path}",
        f"--trainer.callbacks+=tests.test_cli_semantics.{callback}",
    ]  # fmt: skip
    env = {**os.environ, "LMP_TEST_MARKER": str(marker), "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(args, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert marker.exists(), process.stderr.read() if process.stderr else ""
    process.send_signal(signum)
    _, err = process.communicate(timeout=240)
    return process.returncode, err


def test_a_sigterm_during_validation_keeps_the_epochs_validation(tmp_path: Path) -> None:
    """SIGTERM inside the fit's first validation: the validation and its checkpoints finish
    (best-epoch0.ckpt), then the fit stops with last.ckpt and exit status 143."""
    status, err = _signal_fit(tmp_path, signal.SIGTERM, "MarkInValidation", epochs=3)
    assert status == 143, err[-2000:]
    names = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert "best-epoch0.ckpt" in names and "last.ckpt" in names, names
    last = torch.load(tmp_path / "ckpt" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["epoch"] == 1  # stopped in epoch 1, after epoch 0's validation


def test_ctrl_c_during_the_last_save_exits_130(tmp_path: Path) -> None:
    status, err = _signal_fit(tmp_path, signal.SIGINT, "MarkInLastSave", epochs=1)
    assert status == 130, err[-2000:]
    last = torch.load(tmp_path / "ckpt" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == 2


def test_training_that_trains_nothing_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = [*TINY, "--trainer.max_epochs=1", f"--trainer.default_root_dir={tmp_path}"]
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *common, "--data.batch_size=5"])  # 4 training images
    assert exit_info.value.code == 2
    assert "--data.batch_size 5 is larger than the 4 training images" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *common, "--trainer.limit_train_batches=0"])
    assert exit_info.value.code == 2
    assert "fit trained no step" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "fit",
                *common,
                "--data.sampler=CropSampling",
                "--data.sampler.num_samples=0",
            ]
        )
    assert exit_info.value.code == 2
    assert "num_samples must be None or >= 1" in capsys.readouterr().err


class Boom(Callback):
    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        raise ValueError("a bug, not a configuration error")


def test_errors_while_training_keep_their_traceback(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="a bug"):
        main(
            [
                "fit",
                *TINY,
                "--trainer.max_epochs=1",
                f"--trainer.default_root_dir={tmp_path}",
                "--trainer.callbacks+=tests.test_cli_semantics.Boom",
            ]
        )


def test_the_command_line_prints_no_args_warning(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lmp_lightning.cli", "fit", *TINY, "--print_config"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "args parameter" not in result.stderr


def test_top_level_help_lists_every_command_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    import lmp_lightning

    main(["--help"])
    out = capsys.readouterr().out
    for command in ("fit", "validate", "test", "predict", "compare", "zoo"):
        assert f"\n  {command} " in out
    main(["--version"])
    assert capsys.readouterr().out.strip() == f"lmp-seg (lmp-lightning) {lmp_lightning.__version__}"


def test_ctrl_c_is_taken_at_the_batch_end_and_twice_at_once() -> None:
    """The first SIGINT only asks for a stop (taken at the next batch end); a second one raises
    at once and gives the previous handler back."""
    from lmp_lightning.callbacks import InterruptCheckpoint

    callback = InterruptCheckpoint()
    before = signal.getsignal(signal.SIGINT)
    callback.on_fit_start(None, None)  # type: ignore[arg-type]
    try:
        assert signal.getsignal(signal.SIGINT) == callback._on_signal
        callback._on_signal(signal.SIGINT, None)  # the first Ctrl-C: no exception yet
        assert callback._signum == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):
            callback._on_signal(signal.SIGINT, None)
        assert signal.getsignal(signal.SIGINT) == before
    finally:
        signal.signal(signal.SIGINT, before)


@pytest.mark.parametrize(
    "how",
    ["lightning-flags", "model-flags", "lightning-yaml", "model-yaml"],
)
def test_the_optimizer_is_the_same_from_a_flag_and_a_file(how: str, tmp_path: Path) -> None:
    """``--optimizer AdamW`` (Lightning's own flag), ``--model.optimizer AdamW`` and the same in
    a YAML file give one AdamW with the typed lr, and the poly decay still steps per step; the
    saved config.yaml says what ran."""
    spec = {"class_path": "torch.optim.AdamW", "init_args": {"lr": 0.002}}
    config = tmp_path / "run.yaml"
    args = {
        "lightning-flags": ["--optimizer=AdamW", "--optimizer.lr=0.002"],
        "model-flags": ["--model.optimizer=AdamW", "--model.optimizer.lr=0.002"],
        "lightning-yaml": [f"--config={config}"],
        "model-yaml": [f"--config={config}"],
    }[how]
    config.write_text(
        yaml.safe_dump(
            {"model": {"optimizer": spec}} if how == "model-yaml" else {"optimizer": spec}
        )
    )
    out = tmp_path / "out"
    cli = run_cli(
        [
            "fit",
            *SMALL,
            *args,
            "--trainer.max_steps=2",
            "--trainer.logger=true",
            f"--trainer.default_root_dir={out}",
        ]
    )
    (optimizer,) = cli.trainer.optimizers
    assert type(optimizer) is torch.optim.AdamW
    assert optimizer.param_groups[0]["initial_lr"] == 0.002
    scheduler = cli.trainer.lr_scheduler_configs[0]
    assert type(scheduler.scheduler).__name__ == "PolyLR" and scheduler.interval == "step"
    assert scheduler.scheduler.total_iters == 2
    (saved,) = out.rglob("config.yaml")
    recorded = yaml.safe_load(saved.read_text())
    assert recorded["model"]["optimizer"]["class_path"] == "torch.optim.AdamW"
    assert recorded["model"]["optimizer"]["init_args"]["lr"] == 0.002
    assert recorded.get("optimizer") is None


def test_print_config_shows_the_papers_optimisation(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        run_cli(["fit", *SMALL, "--model.optimizer.lr=0.05", "--print_config"])
    model = yaml.safe_load(capsys.readouterr().out)["model"]
    assert model["optimizer"]["class_path"] == "torch.optim.SGD"
    assert model["optimizer"]["init_args"]["lr"] == 0.05
    assert model["optimizer"]["init_args"]["momentum"] == 0.9
    assert model["lr_scheduler"]["class_path"] == "lmp_lightning.optim.PolyLR"


@pytest.mark.parametrize("how", ["flag", "yaml"])
def test_an_int_limit_is_a_number_of_batches(how: str, tmp_path: Path) -> None:
    """Lightning's ``limit_val_batches=1`` is one batch and ``1.0`` all of them; its annotation
    puts float first, so jsonargparse alone reads a typed ``1`` as ``1.0``."""
    config = tmp_path / "limits.yaml"
    config.write_text(yaml.safe_dump({"trainer": {"limit_val_batches": 1}}))
    typed = ["--trainer.limit_val_batches=1"] if how == "flag" else [f"--config={config}"]
    cli = SegmentationCLI(
        SegmentationModule,
        SegmentationDataModule,
        args=[*typed, "--trainer.limit_test_batches=0.5", "--trainer.logger=false"],
        run=False,
    )
    assert cli.trainer.limit_val_batches == 1 and type(cli.trainer.limit_val_batches) is int
    assert cli.trainer.limit_test_batches == 0.5


def test_a_fit_resumed_with_more_steps_decays_over_its_own_length(
    checkpoint: Path, tmp_path: Path
) -> None:
    """PolyLR over the fit's steps does not save its length: resumed from the 2-step fit with
    max_steps 6, the schedule runs over 6 steps (restoring the saved length of 2 would have
    held the rate at 0 from step 2 on)."""
    cli = run_cli(
        [
            "fit",
            *SMALL,
            "--trainer.max_steps=6",
            f"--trainer.default_root_dir={tmp_path}",
            f"--ckpt_path={checkpoint}",
        ]
    )
    scheduler = cli.trainer.lr_scheduler_configs[0].scheduler
    assert scheduler.total_iters == 6 and scheduler.last_epoch == 6
    assert cli.trainer.global_step == 6
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    assert "total_iters" not in state["lr_schedulers"][0]
