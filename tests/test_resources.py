"""Shipped data found by name: recipes for ``--config`` and the zoo index, in a checkout and in
an installed wheel (the slow test builds one and uses it from outside the checkout)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lmp_lightning.cli import _shipped_configs, main
from lmp_lightning.resources import config_path, configs_dir, list_configs, zoo_dir

ROOT = Path(__file__).resolve().parents[1]


def test_recipes_are_found_by_name_from_any_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    names = list_configs()
    on_disk = sorted(
        p.relative_to(ROOT / "configs").with_suffix("").as_posix()
        for p in (ROOT / "configs").rglob("*.yaml")
    )
    assert names == on_disk and "camvid/lmp" in names
    for name in names:
        expected = configs_dir() / f"{name}.yaml"
        assert config_path(name) == str(expected)
        assert config_path(f"{name}.yaml") == str(expected)
        assert config_path(f"configs/{name}.yaml") == str(expected)  # the README's spelling


def test_a_file_that_exists_wins_and_an_unknown_name_is_left_to_the_parser(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo").write_text("seed_everything: 3\n")  # a user's own file named 'demo'
    assert config_path("demo") == "demo"
    assert config_path("camvid/nope") == "camvid/nope"


def test_a_folder_named_like_a_recipe_does_not_hide_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo").mkdir()  # `lmp-seg fit --config demo` run from a folder holding demo/
    assert config_path("demo").endswith("demo.yaml")


def test_every_spelling_of_the_config_flag_is_resolved() -> None:
    demo = str(configs_dir() / "demo.yaml")
    assert _shipped_configs(["fit", "--config", "demo", "--trainer.max_epochs", "1"]) == [
        "fit",
        "--config",
        demo,
        "--trainer.max_epochs",
        "1",
    ]
    assert _shipped_configs(["fit", "-c", "demo"]) == ["fit", "-c", demo]
    assert _shipped_configs(["fit", "--config=demo"]) == ["fit", f"--config={demo}"]
    assert _shipped_configs(["fit", "--model.lr", "demo"]) == ["fit", "--model.lr", "demo"]


def test_cli_runs_a_shipped_recipe_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # no configs/ folder here
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", "camvid/lmp", "--print_config"])
    assert exit_info.value.code in (0, None)
    printed = capsys.readouterr().out
    assert "LossMaxPooling" in printed and "tu-tf_efficientnet_lite0" in printed


def test_help_lists_the_shipped_recipes(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(name in text for name in list_configs())


def test_the_zoo_index_is_in_the_data_folder() -> None:
    assert (zoo_dir() / "index.json").is_file()


@pytest.mark.slow
def test_wheel_ships_the_zoo_and_the_recipes(tmp_path: Path) -> None:
    """pip builds the wheel and installs it into a folder; Python started elsewhere, with that
    folder first on its path, loads every zoo entry and finds the recipes inside the wheel."""
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-w", str(wheels)],
        check=True,
    )
    (wheel,) = wheels.glob("lmp_lightning-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True)
    script = textwrap.dedent(
        """
        import json, sys
        from pathlib import Path
        import lmp_lightning
        from lmp_lightning import zoo
        from lmp_lightning.resources import config_path, zoo_dir
        site = Path(sys.argv[1]).resolve()
        assert Path(lmp_lightning.__file__).resolve().is_relative_to(site), lmp_lightning.__file__
        assert zoo_dir().resolve().is_relative_to(site)
        assert Path(config_path("camvid/lmp")).resolve().is_relative_to(site)
        names = zoo.list_models()
        for name in names:
            zoo.load(name)
        print(json.dumps(names))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", script, str(site)],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    shipped = [p.name for p in (ROOT / "zoo").iterdir() if (p / "card.json").is_file()]
    assert sorted(json.loads(out.stdout.strip().splitlines()[-1])) == sorted(shipped)
