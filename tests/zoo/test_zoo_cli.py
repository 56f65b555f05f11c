"""``lmp-seg zoo`` and ``--ckpt_path zoo:...`` end to end on a tiny run."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import pytest

from lmp_lightning.cli import main, run_cli
from lmp_lightning.zoo import cli as zoo_cli
from lmp_lightning.zoo import load
from tests.cli_args import TINY as CLI_TINY

TINY = [*CLI_TINY, "--model.arch=fpn", "--model.encoder_name=resnet18"]


def _one_step_fit(run: Path, *extra: str) -> Path:
    """A one-step fit of the tiny FPN into ``run``."""
    main(
        [
            "fit",
            *TINY,
            "--trainer.max_steps=1",
            "--trainer.max_epochs=1",
            f"--trainer.default_root_dir={run}",
            *extra,
        ]
    )
    return run


@pytest.fixture
def exported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, float]:
    monkeypatch.setenv("LMP_ZOO_CACHE", str(tmp_path / "cache"))
    run = _one_step_fit(tmp_path / "run", "--model.loss=CenterLoss")
    (ckpt,) = run.rglob("*.ckpt")
    cli = run_cli(["validate", *TINY, f"--trainer.default_root_dir={run}", f"--ckpt_path={ckpt}"])
    (results,) = run.rglob("results_val.json")
    entry = tmp_path / "zoo" / "tiny"
    main(
        [
            "zoo",
            "export",
            str(ckpt),
            "--name",
            "tiny-fpn",
            "--out",
            str(entry),
            "--results",
            str(results),
            "--index",
            str(tmp_path / "zoo" / "index.json"),
        ]
    )
    return ckpt, entry, float(cli.trainer.callback_metrics["val/mIoU"])


def test_export_info_and_validate_from_the_zoo(exported, tmp_path, capsys) -> None:
    _, entry, miou = exported
    capsys.readouterr()
    main(["zoo", "info", str(entry), "--json"])
    card = json.loads(capsys.readouterr().out)
    assert card["architecture"] == "fpn" and card["num_classes"] == 10
    assert card["metrics"]["miou"] == pytest.approx(miou)
    assert load("tiny-fpn", tmp_path / "zoo" / "index.json").card.name == "tiny-fpn"  # --index
    # The entry is usable wherever a checkpoint is, with another loss than it was trained with.
    cli = run_cli(
        [
            "validate",
            *TINY,
            f"--trainer.default_root_dir={tmp_path / 'v'}",
            f"--ckpt_path=zoo:{entry}",
        ]
    )
    assert float(cli.trainer.callback_metrics["val/mIoU"]) == pytest.approx(miou)
    assert not (tmp_path / "cache").exists()  # no Lightning checkpoint made of the entry
    # Another normalisation in the data module: the card's is used, and one line says so.
    capsys.readouterr()
    cli = run_cli(
        [
            "validate",
            *TINY,
            "--data.mean=[0.2, 0.2, 0.2]",
            f"--trainer.default_root_dir={tmp_path / 'w'}",
            f"--ckpt_path=zoo:{entry}",
        ]
    )
    assert float(cli.trainer.callback_metrics["val/mIoU"]) == pytest.approx(miou)
    said = [line for line in capsys.readouterr().out.splitlines() if "card's normalisation" in line]
    assert len(said) == 1 and "mean [0.485, 0.456, 0.406] instead of [0.2, 0.2, 0.2]" in said[0]


def test_zoo_checkpoint_of_a_corrupt_entry_is_refused(exported, tmp_path, capsys) -> None:
    _, entry, _ = exported
    weights = entry / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(SystemExit):
        main(
            [
                "validate",
                *TINY,
                f"--trainer.default_root_dir={tmp_path}",
                f"--ckpt_path=zoo:{entry}",
            ]
        )
    assert "sha256 mismatch" in capsys.readouterr().err


def test_push_to_the_hub_and_wandb(exported, monkeypatch, tmp_path) -> None:
    _, entry, _ = exported
    uploads = []

    class FakeApi:
        def create_repo(self, repo_id, exist_ok, private):  # type: ignore[no-untyped-def]
            uploads.append(("create", repo_id))

        def upload_folder(self, repo_id, folder_path, commit_message):  # type: ignore[no-untyped-def]
            uploads.append(("upload", repo_id, sorted(p.name for p in Path(folder_path).iterdir())))
            return "https://huggingface.co/me/tiny/commit/1"

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    import wandb

    added = []
    original_add_dir = wandb.Artifact.add_dir

    def spy(self, local_path, *args, **kwargs):  # type: ignore[no-untyped-def]
        added.append((self.name, self.type, local_path))
        return original_add_dir(self, local_path, *args, **kwargs)

    monkeypatch.setattr(wandb.Artifact, "add_dir", spy)
    places = zoo_cli.push_entry(entry, repo_id="me/tiny", wandb_project="lmp")
    assert uploads[0] == ("create", "me/tiny")
    assert {"card.json", "config.json", "model.safetensors", "README.md"} <= set(uploads[1][2])
    assert places == ["https://huggingface.co/me/tiny/commit/1", "lmp/tiny-fpn"]
    assert added == [("tiny-fpn", "model", str(entry))]  # the entry as a W&B model artifact
    with pytest.raises(ValueError, match="--repo-id"):
        zoo_cli.push_entry(entry)


def test_fine_tuning_from_a_zoo_entry(exported, tmp_path, capsys) -> None:
    _, entry, miou = exported
    import torch

    reference = load(str(entry)).model.state_dict()
    cli = run_cli(
        [
            "validate",
            *TINY,
            f"--trainer.default_root_dir={tmp_path}",
            f"--model.init_weights=zoo:{entry}",
        ]
    )
    assert float(cli.trainer.callback_metrics["val/mIoU"]) == pytest.approx(miou)
    for key, value in cli.model.model.state_dict().items():
        assert torch.equal(value, reference[key])
    main(
        [
            "fit",
            *TINY,
            "--trainer.max_steps=1",
            "--trainer.max_epochs=1",
            f"--trainer.default_root_dir={tmp_path / 'ft'}",
            f"--model.init_weights=zoo:{entry}",
        ]
    )
    with pytest.raises(SystemExit):  # another architecture: one clear message
        main(["validate", *TINY, "--model.arch=unet", f"--model.init_weights=zoo:{entry}"])
    err = capsys.readouterr().err
    assert (
        "holds a fpn / resnet18 network with 10 classes, but this model is unet / resnet18" in err
    )


def test_export_validates_when_the_run_has_no_results(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("LMP_ZOO_CACHE", str(tmp_path / "cache"))
    run = _one_step_fit(tmp_path / "run")
    (ckpt,) = run.rglob("*.ckpt")
    assert not list(run.rglob("results_val.json"))
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))

    def no_subprocess(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError(f"a subprocess was started: {args}")

    monkeypatch.setattr(subprocess, "Popen", no_subprocess)  # validated in this process
    capsys.readouterr()
    main(["zoo", "export", str(ckpt), "--name", "fresh", "--out", str(tmp_path / "entry")])
    assert not list(scratch.iterdir())  # the validation's temporary folder is removed
    hint = capsys.readouterr().out.strip().splitlines()
    assert "not listed in a zoo index: export with --index INDEX" in hint[-2]
    spec = json.loads("{" + hint[-1] + "}")["fresh"]  # what to add to an index by hand
    assert spec["path"] == "entry" and sorted(spec["sha256"]) == [
        "card.json",
        "config.json",
        "model.safetensors",
    ]
    main(["zoo", "info", str(tmp_path / "entry"), "--json"])
    card = json.loads(capsys.readouterr().out)
    assert 0.0 <= card["metrics"]["miou"] <= 1.0 and len(card["metrics"]["iou"]) == 10
    assert card["loss"]["class_path"].endswith("CrossEntropy")


@pytest.mark.parametrize("same_step", [True, False])
def test_export_takes_a_fits_results_only_for_a_checkpoint_of_that_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], same_step
) -> None:  # type: ignore[no-untyped-def]
    """fit writes the results of its last validation; zoo export uses them for a checkpoint of
    that step (no second validation) and validates any other checkpoint anew."""
    from lmp_lightning.reports import ClassResults

    monkeypatch.setenv("LMP_ZOO_CACHE", str(tmp_path / "cache"))
    run = tmp_path / "run"
    main(["fit", *TINY, "--trainer.max_epochs=1", f"--trainer.default_root_dir={run}"])
    (ckpt,) = run.rglob("*.ckpt")
    (path,) = run.rglob("results_val.json")
    fitted = ClassResults.load(path)
    assert fitted.step == 2
    marked = [0.5] * len(fitted.iou)  # numbers no validation gives: which path was taken
    ClassResults(
        fitted.class_names, marked, fitted.pixel_counts, 0.5, step=2 if same_step else 1
    ).save(path)
    main(["zoo", "export", str(ckpt), "--name", "t", "--out", str(tmp_path / "entry")])
    capsys.readouterr()
    main(["zoo", "info", str(tmp_path / "entry"), "--json"])
    card = json.loads(capsys.readouterr().out)
    assert (card["metrics"]["iou"] == marked) == same_step
    if not same_step:
        assert card["metrics"]["iou"] == pytest.approx(fitted.iou, nan_ok=True)


def test_export_with_a_config_that_fails_to_validate_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LMP_ZOO_CACHE", str(tmp_path / "cache"))
    run = _one_step_fit(tmp_path / "run")
    (ckpt,) = run.rglob("*.ckpt")
    config = tmp_path / "other.yaml"
    config.write_text("model:\n  arch: unet\n")  # another network than the checkpoint's
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(["zoo", "export", str(ckpt), "--name", "x", "--out", str(tmp_path / "e"),
              f"--config={config}"])  # fmt: skip
    assert exit_info.value.code == 2
    (line,) = [x for x in capsys.readouterr().err.splitlines() if x.startswith("lmp-seg: error")]
    assert f"validating {ckpt} with {config} failed: --model.arch is 'unet'" in line
    assert line.endswith("give the metrics with --results")
    assert not (tmp_path / "e").exists()
