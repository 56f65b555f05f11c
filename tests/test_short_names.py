"""Data sets with typed arguments, and short names from the live registries: a data set or loss
that a user's package registers is picked by its short name on the command line and in YAML,
and what is built (and saved in ``config.yaml``) is the registered class itself."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from lmp_lightning import _short_names
from lmp_lightning.cli import SegmentationCLI, main, run_cli
from lmp_lightning.data import DATASETS, SegmentationDataModule, SyntheticStreetScenes
from lmp_lightning.data.base import Split
from lmp_lightning.data.registry import register_dataset
from lmp_lightning.data.sets import CamVid, PascalVOC, Synthetic
from lmp_lightning.data.spec import DatasetSpec
from lmp_lightning.losses import LOSSES, CrossEntropy, LossMaxPooling, names
from lmp_lightning.losses.base import register_loss
from lmp_lightning.module import SegmentationModule
from tests.cli_args import TINY


def _cli(*args: str) -> SegmentationCLI:
    """The CLI of ``ARGS``, parsed and its classes made, nothing run."""
    with warnings.catch_warnings():  # args given from Python, as run_cli gives them
        warnings.filterwarnings("ignore", "LightningCLI's args parameter is intended")
        return SegmentationCLI(
            SegmentationModule,
            SegmentationDataModule,
            args=["--model.encoder_name=resnet18", *args],
            run=False,
        )


def _data(*args: str) -> SegmentationDataModule:
    """The data module of ``ARGS``."""
    return _cli(*args).datamodule


def _yaml(tmp_path: Path, data: dict[str, object]) -> str:
    path = tmp_path / f"config{len(list(tmp_path.glob('config*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump({"data": data}))
    return f"--config={path}"


def test_a_data_set_from_a_flag_a_file_and_python_is_the_same(tmp_path: Path) -> None:
    root = str(tmp_path)
    python = SegmentationDataModule(dataset=CamVid(root=root, scale=0.5))
    given = {
        "class name": ["--data.dataset=CamVid", f"--data.dataset.root={root}"],
        "short name": ["--data.dataset=camvid", f"--data.dataset.root={root}"],
        "--data.root": ["--data.dataset=camvid", f"--data.root={root}"],
        "yaml": [
            _yaml(tmp_path, {"dataset": {"class_path": "CamVid", "init_args": {"root": root}}})
        ],
        "yaml short": [_yaml(tmp_path, {"dataset": "camvid", "root": root})],
        "yaml short class_path": [
            _yaml(tmp_path, {"dataset": {"class_path": "camvid", "init_args": {"root": root}}})
        ],
    }
    for how, args in given.items():
        data = _data(*args, "--data.dataset.scale=0.5")
        assert type(data.dataset) is CamVid, how
        assert data.dataset == python.dataset, how
        assert data.hparams["dataset"] == python.hparams["dataset"], how
        assert data.input_scale == 0.5 and data.num_classes == 11, how
    assert python.hparams["dataset"] == {
        "class_path": "lmp_lightning.data.sets.CamVid",
        "init_args": {"root": root, "scale": 0.5},
    }


def test_the_default_is_the_synthetic_data_set_with_its_own_arguments() -> None:
    assert SegmentationDataModule().dataset == Synthetic(seed=0)
    data = _data("--data.dataset.num_train_images=3", "--data.dataset.image_size=[64, 80]")
    assert type(data.dataset) is Synthetic
    assert len(data._read("train")) == 3 and data._read("val")[0]["image"].shape == (64, 80, 3)
    assert SegmentationDataModule("synthetic", seed=5).dataset.build("train").seed == 5


def test_a_data_set_given_twice_its_root_or_a_split_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="two data directories"):
        SegmentationDataModule(CamVid(root=str(tmp_path)), root=str(tmp_path / "other"))
    with pytest.raises(TypeError, match="not one split of one"):
        SegmentationDataModule(SyntheticStreetScenes(num_images=2))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="scale must be positive"):
        CamVid(scale=0)


def test_data_set_help_lists_its_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("CamVid", "camvid"):
        with pytest.raises(SystemExit) as exit_info:
            main(["fit", "--data.dataset.help", name])
        assert exit_info.value.code == 0
        out = capsys.readouterr().out
        assert "--data.dataset.scale" in out.replace("init_args.", "") and "root" in out


@pytest.mark.parametrize(
    "given",
    [
        ["--data.dataset_options={scale: 0.5}"],
        ["--data.dataset=camvid", "--data.dataset_options", "{scale: 0.5}"],
        ["yaml"],
    ],
    ids=["flag", "flag-after-name", "yaml"],
)
def test_dataset_options_stop_with_one_line_naming_the_new_spelling(
    given: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if given == ["yaml"]:
        given = [_yaml(tmp_path, {"dataset": "camvid", "dataset_options": {"scale": 0.5}})]
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *TINY, f"--trainer.default_root_dir={tmp_path}", *given])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("lmp-seg: error:")]
    assert len(lines) == 1 and "Traceback" not in err
    assert "--data.dataset_options (dataset_options: in a config file) is gone" in lines[0]
    assert "--data.dataset.scale 0.5" in lines[0]


def test_the_synthetic_sets_old_flags_name_their_new_spelling(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", f"--trainer.default_root_dir={tmp_path}", "--data.num_train_images=4"])
    assert exit_info.value.code == 2
    assert "is the synthetic data set's own argument now: --data.dataset.num_train_images" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize("how", ["flag", "yaml"])
def test_a_misspelt_data_set_is_one_line_listing_the_valid_names(
    how: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    given = ["--data.dataset=camvd"] if how == "flag" else [_yaml(tmp_path, {"dataset": "camvd"})]
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *TINY, f"--trainer.default_root_dir={tmp_path}", *given])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "lmp-seg: error: unknown data set 'camvd'; valid names are ['camvid', " in err
    assert len([line for line in err.splitlines() if line.startswith("lmp-seg:")]) == 1


# A user's package: a data set and a loss of its own, registered under short names.
class Tiny(DatasetSpec):
    """The synthetic scenes at 64 x 80, ``images`` of them in every split.

    Args:
        images: the number of images of each split.
    """

    dataset_class = SyntheticStreetScenes

    def __init__(self, images: int = 2) -> None:
        self.images = images

    def build(self, split: Split) -> SyntheticStreetScenes:
        return SyntheticStreetScenes(self.images, 64, 80, split=split)


class HalfCrossEntropy(CrossEntropy):
    """Cross-entropy, halved."""

    def __init__(self, factor: float = 0.5, ignore_index: int | None = 255) -> None:
        super().__init__(ignore_index)
        self.factor = factor

    def compute(self, logits, target, features=None):  # type: ignore[no-untyped-def]
        return self.factor * super().compute(logits, target, features)


@pytest.fixture
def registered() -> Iterator[None]:
    """``tiny`` and ``half_ce`` registered for one test, as a user's package registers them."""
    register_dataset("tiny")(Tiny)
    register_loss("half_ce")(HalfCrossEntropy)
    try:
        yield
    finally:
        del DATASETS["tiny"], LOSSES["half_ce"]
        _short_names.sync()


@pytest.mark.usefixtures("registered")
@pytest.mark.parametrize("how", ["flag", "yaml"])
def test_a_data_set_and_a_loss_a_user_registers_get_short_names(how: str, tmp_path: Path) -> None:
    if how == "flag":
        given = ["--data.dataset=tiny", "--data.dataset.images=3", "--model.loss=half_ce"]
    else:
        config = tmp_path / "given.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "data": {"dataset": {"class_path": "tiny", "init_args": {"images": 3}}},
                    "model": {"loss": "half_ce"},
                }
            )
        )
        given = [f"--config={config}"]
    run = tmp_path / "run"
    cli = run_cli(
        [
            "fit",
            *TINY,
            *given,
            "--model.loss.factor=0.25",
            "--trainer.max_steps=1",
            "--trainer.limit_val_batches=1",
            "--trainer.logger=false",
            f"--trainer.default_root_dir={run}",
        ]
    )
    assert type(cli.datamodule.dataset) is Tiny and cli.datamodule.dataset.images == 3
    assert type(cli.model.loss) is HalfCrossEntropy and cli.model.loss.factor == 0.25
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["data"]["dataset"]["class_path"] == "tests.test_short_names.Tiny"
    assert saved["model"]["loss"]["class_path"] == "tests.test_short_names.HalfCrossEntropy"


def test_a_short_name_no_longer_registered_is_gone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    register_loss("half_ce")(HalfCrossEntropy)
    try:
        _short_names.sync()
        assert issubclass(names.half_ce, HalfCrossEntropy)
    finally:
        del LOSSES["half_ce"]
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *TINY, f"--trainer.default_root_dir={tmp_path}", "--model.loss=half_ce"])
    assert exit_info.value.code == 2 and "unknown loss 'half_ce'" in capsys.readouterr().err
    assert not hasattr(names, "half_ce")


def test_short_names_build_the_registered_class(tmp_path: Path) -> None:
    data = _data("--data.dataset=voc", f"--data.root={tmp_path}")
    assert type(data.dataset) is PascalVOC and data.dataset.root == str(tmp_path)
    cli = _cli("--model.loss=lmp", "--model.loss.p=2")
    assert type(cli.model.loss) is LossMaxPooling and cli.model.loss.p == 2
    assert cli.config.model.loss.class_path == "lmp_lightning.losses.lmp.LossMaxPooling"
