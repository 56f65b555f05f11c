"""Results files, gains, correlation, the Fig. 3 PNG, lmp-seg compare and the W&B table."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lmp_lightning.cli import main, run_cli
from lmp_lightning.data import SyntheticStreetScenes
from lmp_lightning.module import SegmentationModule
from lmp_lightning.reports import ClassResults, gains, match_analysis, plot_gains, spearman
from tests.cli_args import TINY as CLI_TINY

TINY = [*CLI_TINY, "--model.encoder_name=resnet18"]


def _results(iou: list[float], counts: list[int]) -> ClassResults:
    names = [f"c{i}" for i in range(len(iou))]
    return ClassResults(names, iou, counts, float(np.nanmean(iou)))


def test_results_from_a_known_confusion_matrix() -> None:
    module = SegmentationModule("fpn", "resnet18", num_classes=3, class_names=["a", "b", "c"])
    preds = torch.tensor([[0, 0, 1, 1, 2, 0]])
    target = torch.tensor([[0, 1, 1, 1, 255, 0]])
    module.val_metrics.update(preds, target)
    module._log_epoch("val")
    results = module.class_results("val")
    # confusion (rows = labels): a: [2, 0, 0]; b: [1, 2, 0]; c absent from labels, predicted at
    # an ignored pixel only (not counted): IoU a = 2/3, b = 2/3, c = NaN.
    assert results.pixel_counts == [2, 3, 0]
    assert results.iou[:2] == pytest.approx([2 / 3, 2 / 3]) and math.isnan(results.iou[2])
    assert results.miou == pytest.approx(2 / 3)
    assert results.config["loss"]["class_path"] == "lmp_lightning.losses.cross_entropy.CrossEntropy"


def test_validate_writes_the_results_file(tmp_path: Path) -> None:
    cli = run_cli(
        ["validate", *TINY, f"--trainer.default_root_dir={tmp_path}", "--model.loss=LossMaxPooling"]
    )
    (path,) = tmp_path.rglob("results_val.json")
    results = ClassResults.load(path)
    metrics = cli.trainer.callback_metrics
    for name, iou in zip(results.class_names, results.iou, strict=True):
        assert iou == pytest.approx(float(metrics[f"val/IoU_{name}"]), nan_ok=True)
    scenes = SyntheticStreetScenes(num_images=2, height=64, width=80, split="val")
    counts = sum(np.bincount(m[m != 255], minlength=10) for m in (s["mask"] for s in scenes))
    assert results.pixel_counts == counts.tolist()
    assert results.config["loss"]["init_args"] == {
        "p": 1.3,
        "m": 0.25,
        "ignore_index": 255,
        "validate_args": True,
        "reduction": "mean",
    }
    assert results.config["model"]["arch"] == "deeplabv3plus"


def test_gains_and_correlation_by_hand() -> None:
    base = _results([0.9, 0.5, 0.2, 0.1], [1000, 100, 10, 1])
    run = _results([0.9, 0.55, 0.3, 0.3], [1000, 100, 10, 1])
    assert gains(base, run).tolist() == pytest.approx([0.0, 0.05, 0.1, 0.2])
    assert spearman(gains(base, run), run.pixel_counts) == pytest.approx(-1.0)
    # mIoU gap 8.75 points over 4 classes: the worst class alone would need +35 points.
    analysis = match_analysis(base, run)
    assert analysis[0] == pytest.approx((1, 35.0, True))
    assert analysis[1][:2] == pytest.approx((2, 17.5))
    assert spearman([1, 2, float("nan")], [1, 2, 3]) != spearman([1, 2, 3], [1, 2, 3])


def test_figure_is_a_png_of_the_expected_size(tmp_path: Path) -> None:
    base = _results([0.9, 0.5, 0.2], [1000, 100, 10])
    path = plot_gains(base, _results([0.8, 0.6, 0.4], [1000, 100, 10]), tmp_path / "fig.png")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (1200, 800)


def test_compare_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = _results([0.9, 0.5, 0.2], [1000, 100, 10]).save(tmp_path / "base" / "results_val.json")
    run = _results([0.85, 0.6, 0.4], [1000, 100, 10]).save(tmp_path / "lmp" / "results_val.json")
    main(["compare", str(base), str(run), "--out", str(tmp_path / "out")])
    report = (tmp_path / "out" / "comparison.md").read_text()
    assert "| base | 90.0 | 50.0 | 20.0 | 53.3 |" in report
    assert "| gain | -5.0 | +10.0 | +20.0 | +8.3 |" in report
    assert "Spearman correlation between gain and pixel count: -1.000" in report
    assert (tmp_path / "out" / "gains.png").is_file()
    capsys.readouterr()
    with pytest.raises(SystemExit):  # never overwrites
        main(["compare", str(base), str(run), "--out", str(tmp_path / "out")])
    assert "gains.png exists" in capsys.readouterr().err
    assert (tmp_path / "out" / "comparison.md").read_text() == report


def test_wandb_offline_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    baseline = _results([0.5] * 10, [1] * 10)
    baseline.class_names = list(SyntheticStreetScenes.class_names)
    baseline_path = baseline.save(tmp_path / "baseline.json")
    cli = run_cli(
        [
            "fit",
            *TINY,
            "--trainer.max_epochs=1",
            f"--trainer.default_root_dir={tmp_path}",
            "--trainer.logger=lightning.pytorch.loggers.WandbLogger",
            f"--trainer.logger.save_dir={tmp_path}",
            "--trainer.logger.offline=true",
            "--trainer.callbacks+=lmp_lightning.callbacks.PerClassGainReport",
            f"--trainer.callbacks.baseline={baseline_path}",
        ]
    )
    import wandb

    wandb.finish()
    (table_file,) = tmp_path.rglob("per_class_gains*.table.json")
    table = json.loads(table_file.read_text())
    assert table["columns"] == ["class", "pixel_count", "iou", "baseline_iou", "gain"]
    results = cli.model.class_results("val")
    assert [row[0] for row in table["data"]] == results.class_names
    for row, iou, count in zip(table["data"], results.iou, results.pixel_counts, strict=True):
        assert row[1] == count and row[3] == 0.5
        assert row[2] == pytest.approx(iou) and row[4] == pytest.approx(iou - 0.5)
    assert list(tmp_path.rglob("gains-step*.png"))


def test_wandb_runs_keep_their_files_in_their_own_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's W&B command, twice in one place: nothing lands in the working directory,
    and each run's config.yaml, checkpoints and W&B files sit under the run's folder."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.chdir(tmp_path)
    args = [
        "fit",
        *CLI_TINY,
        "--trainer.max_epochs=1",
        "--trainer.limit_val_batches=1",
        "--trainer.logger=lightning.pytorch.loggers.WandbLogger",
        "--trainer.logger.project=lmp",
        "--trainer.logger.save_dir=runs/lmp_wandb",
    ]
    import wandb

    ids = []
    for _ in range(2):
        cli = run_cli(args)
        wandb.finish()
        ids.append(cli.trainer.logger.version)
    assert ids[0] != ids[1]
    assert [p.name for p in tmp_path.iterdir()] == ["runs"]
    base = tmp_path / "runs" / "lmp_wandb"
    for run_id in ids:
        assert (base / "lmp" / run_id / "config.yaml").is_file()
        checkpoints = [p.name for p in (base / "lmp" / run_id / "checkpoints").glob("*.ckpt")]
        assert checkpoints == ["epoch0-step2.ckpt"]  # Lightning's default callback, without '='
        (wandb_run,) = (base / "wandb").glob(f"*{run_id}")
        assert list(wandb_run.rglob("predictions_*.png"))  # ValidationImages, added by lmp-seg


def test_gain_report_with_the_default_logger(tmp_path: Path) -> None:
    baseline = _results([0.5] * 10, [1] * 10)
    baseline.class_names = list(SyntheticStreetScenes.class_names)
    baseline_path = baseline.save(tmp_path / "baseline.json")
    run_cli(
        [
            "fit",
            *TINY,
            "--trainer.max_epochs=1",
            f"--trainer.default_root_dir={tmp_path}",
            "--trainer.callbacks+=lmp_lightning.callbacks.PerClassGainReport",
            f"--trainer.callbacks.baseline={baseline_path}",
        ]
    )
    (png,) = tmp_path.rglob("gains-step*.png")
    (metrics,) = tmp_path.rglob("metrics.csv")
    assert Image.open(png).size == (1200, 800)
    assert "val/gain_spearman" in metrics.read_text().splitlines()[0]


def _welch_interval(a: list[float], b: list[float], level: float = 0.95) -> tuple[float, float]:
    """Welch's t interval of mean(b) - mean(a), written out (Welch-Satterthwaite degrees)."""
    from scipy.stats import t

    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = t.ppf(0.5 + level / 2, df) * math.sqrt(va + vb)
    gain = np.mean(b) - np.mean(a)
    return gain - half, gain + half


def test_seed_comparison_against_a_welch_interval_written_out() -> None:
    from lmp_lightning.reports import compare_seeds

    rng = np.random.default_rng(0)
    base = [_results(list(rng.uniform(0.3, 0.7, 3)), [1000, 100, 10]) for _ in range(3)]
    run = [_results(list(rng.uniform(0.4, 0.9, 3)), [1000, 100, 10]) for _ in range(5)]
    base[1].iou[2] = float("nan")  # a class absent from one seed: left out of that class only
    c = compare_seeds(base, run)
    assert c.n == (3, 5)
    for j in range(3):
        a = [r.iou[j] for r in base if not math.isnan(r.iou[j])]
        b = [r.iou[j] for r in run]
        assert c.baseline_mean[j] == pytest.approx(np.mean(a))
        assert c.baseline_std[j] == pytest.approx(np.std(a, ddof=1))
        assert c.run_std[j] == pytest.approx(np.std(b, ddof=1))
        assert c.gain[j] == pytest.approx(np.mean(b) - np.mean(a))
        assert (c.low[j], c.high[j]) == pytest.approx(_welch_interval(a, b))
    a, b = [r.miou for r in base], [r.miou for r in run]
    assert (c.low[-1], c.high[-1]) == pytest.approx(_welch_interval(a, b))
    single = compare_seeds(base[:1], run)  # one seed on a side: no interval, no std
    assert math.isnan(single.low[0]) and math.isnan(single.baseline_std[0])


def test_compare_command_with_several_seeds_per_side(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    counts = [1000, 100, 10]
    base = [
        _results(iou, counts).save(tmp_path / "base" / f"s{i}.json")
        for i, iou in enumerate([[0.9, 0.5, 0.2], [0.88, 0.52, 0.1], [0.92, 0.48, 0.15]])
    ]
    run = [
        _results(iou, counts).save(tmp_path / "lmp" / f"s{i}.json")
        for i, iou in enumerate([[0.85, 0.6, 0.4], [0.84, 0.62, 0.35]])
    ]
    out = tmp_path / "out"
    main(["compare", "--baseline", *map(str, base), "--run", *map(str, run), "--out", str(out)])
    report = (out / "comparison.md").read_text()
    assert "| class | pixels | base (n=3) | lmp (n=2) | gain | 95% interval |" in report
    assert "| c0 | 1000 | 90.00 ± 2.00 | 84.50 ± 0.71 | -5.50 | [" in report
    assert "| base | 90.0 | 50.0 | 15.0 | 51.7 |" in report  # the Tab. 3 table of the means
    assert Image.open(out / "gains.png").size == (1200, 800)
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["compare", str(base[0]), "--run", str(run[0]), "--out", str(tmp_path / "x")])
    assert "not both" in capsys.readouterr().err


def test_spearman_against_ranks_written_out() -> None:
    """Against Pearson's correlation of average ranks computed by a loop here (ties share the
    mean of the positions they span), NaN pairs dropped first."""

    def average_ranks(values: np.ndarray) -> np.ndarray:
        return np.array(
            [
                (values < v).sum() + ((values == v).sum() + 1) / 2  # 1-based average position
                for v in values
            ]
        )

    rng = np.random.default_rng(3)
    for _ in range(20):
        x = rng.integers(0, 5, 12).astype(float)  # many ties
        y = rng.normal(size=12)
        y[rng.integers(0, 12)] = np.nan
        keep = np.isfinite(x) & np.isfinite(y)
        rx, ry = average_ranks(x[keep]), average_ranks(y[keep])
        expected = np.corrcoef(rx, ry)[0, 1]
        assert spearman(x, y) == pytest.approx(expected, abs=1e-9)
    assert math.isnan(spearman([1, 2, 3], [5, 5, 5])) and math.isnan(spearman([1, 2], [2, 1]))


def test_fit_then_compare_needs_nothing_in_between(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """fit leaves results_val.json in its run folder; compare names each side by the config
    the run was started from, not by Lightning's version_N folders."""
    files = []
    for name, loss in (("my-baseline", "CrossEntropy"), ("my-lmp", "LossMaxPooling")):
        config = tmp_path / f"{name}.yaml"
        config.write_text(f"model:\n  loss: {loss}\n")
        root = tmp_path / name
        main(
            [
                "fit",
                f"--config={config}",
                *TINY,
                "--trainer.max_epochs=1",
                "--trainer.logger=true",
                f"--trainer.default_root_dir={root}",
            ]
        )
        (path,) = root.rglob("results_val.json")
        assert path.parent.name == "version_0"  # the run's own folder
        saved = ClassResults.load(path)
        assert saved.run == name and saved.step == 2
        files.append(path)
    capsys.readouterr()
    main(["compare", *map(str, files), "--out", str(tmp_path / "out")])
    report = capsys.readouterr().out
    assert report.startswith("# my-lmp against my-baseline")
    assert "version_0" not in report


def _side(iou: list[float], run: str | None = None, loss: str = "x.CrossEntropy") -> ClassResults:
    results = _results(iou, [1000, 100, 10])
    results.run, results.config = run, {"loss": {"class_path": loss}}
    return results


@pytest.mark.parametrize(
    ("base", "run", "folders", "expected"),
    [
        (
            _side([0.5] * 3, "camvid/base"),
            _side([0.6] * 3, "camvid/lmp"),
            ("v0", "v1"),
            ("camvid/base", "camvid/lmp"),
        ),
        (_side([0.5] * 3, "a"), _side([0.6] * 3, "a"), ("v0", "v1"), ("a (v0)", "a (v1)")),
        (
            _side([0.5] * 3),
            _side([0.6] * 3, loss="x.LossMaxPooling"),
            ("v", "v"),
            ("CrossEntropy", "LossMaxPooling"),
        ),
        (
            _side([0.5] * 3),
            _side([0.6] * 3),
            ("base", "lmp"),
            ("CrossEntropy (base)", "CrossEntropy (lmp)"),
        ),
        (_side([0.5] * 3), _side([0.6] * 3), ("v", "v"), ("baseline", "run")),
    ],
)
def test_compare_names_each_side_by_its_run(tmp_path, capsys, base, run, folders, expected) -> None:  # type: ignore[no-untyped-def]
    paths = [
        side.save(tmp_path / f"{i}" / folder / "results_val.json")
        for i, (side, folder) in enumerate(zip((base, run), folders, strict=True))
    ]
    main(["compare", *map(str, paths), "--out", str(tmp_path / "out")])
    assert capsys.readouterr().out.startswith(f"# {expected[1]} against {expected[0]}\n")


@pytest.mark.parametrize(
    ("run_iou", "verdict"),
    [
        (
            [0.6, 0.6, 0.6],
            "lmp is 10.00 mIoU points better than base; of 3 classes, 2 rose and 0 fell.",
        ),
        (
            [0.4, 0.5, 0.45],
            "lmp is 5.00 mIoU points worse than base; of 3 classes, 1 rose and 2 fell.",
        ),
        ([0.5, 0.5, 0.5], "lmp and base have the same mIoU; of 3 classes, 1 rose and 1 fell."),
    ],
)
def test_compare_words_its_summary_by_the_sign(tmp_path, capsys, run_iou, verdict) -> None:  # type: ignore[no-untyped-def]
    base = _side([0.5, 0.4, 0.6], "base").save(tmp_path / "b" / "results_val.json")
    run = _side(run_iou, "lmp").save(tmp_path / "r" / "results_val.json")
    main(["compare", str(base), str(run), "--out", str(tmp_path / "out")])
    report = capsys.readouterr().out
    assert verdict in report
    assert ("To match lmp" in report) == (verdict.split()[2] == "10.00")
