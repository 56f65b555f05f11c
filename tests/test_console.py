"""The ``lmp-seg`` console script: the zoo's listing and cards answer without loading PyTorch,
and ``import lmp_lightning`` stays light until a name of the API is used."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lmp_lightning.console import main
from lmp_lightning.resources import zoo_dir

ROOT = Path(__file__).resolve().parents[1]


def _python(code: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT
    ).stdout


def test_zoo_list_and_info_do_not_load_torch() -> None:
    out = _python(
        "import sys\n"
        "from lmp_lightning.console import main\n"
        "main(['zoo', 'list'])\n"
        "main(['zoo', 'info', 'camvid-lmp'])\n"
        "main(['--version'])\n"
        "print('torch' in sys.modules, 'lightning' in sys.modules)\n"
    )
    assert out.strip().splitlines()[-1] == "False False"


def test_import_is_light_until_a_name_is_used() -> None:
    out = _python(
        "import sys, lmp_lightning\n"
        "light = 'torch' not in sys.modules\n"
        "loss = lmp_lightning.LossMaxPooling(p=1.3, m=0.25)\n"
        "print(light, type(loss).__name__, 'LossMaxPooling' in dir(lmp_lightning))\n"
    )
    assert out.split() == ["True", "LossMaxPooling", "True"]
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        import lmp_lightning

        lmp_lightning.Nope  # noqa: B018


def test_zoo_list_is_a_table_of_every_entry(capsys: pytest.CaptureFixture[str]) -> None:
    main(["zoo", "list"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == [
        "name",
        "data",
        "set",
        "architecture",
        "encoder",
        "mIoU",
        "(%)",
        "size",
    ]
    index = json.loads((zoo_dir() / "index.json").read_text())["entries"]
    assert [line.split()[0] for line in lines[1:]] == list(index)
    for line in lines[1:]:
        card = json.loads((zoo_dir() / line.split()[0] / "card.json").read_text())
        assert f"{100 * card['metrics']['miou']:.1f}" in line and card["encoder"] in line
        assert line.endswith("MiB")


def test_zoo_info_summary_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    main(["zoo", "info", "camvid-lmp"])
    summary = capsys.readouterr().out
    assert summary.startswith("# camvid-lmp") and "mIoU on val" in summary
    main(["zoo", "info", "camvid-lmp", "--json"])
    card = json.loads(capsys.readouterr().out)
    assert card["name"] == "camvid-lmp" and Path(card["path"]).is_dir()


def test_zoo_info_of_an_unknown_name_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["zoo", "info", "no-such-entry"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lmp-seg: error: 'no-such-entry' is neither") and "\n" not in err


def test_other_commands_go_to_the_lightning_cli(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["validate", "--help"])
    assert exit_info.value.code == 0 and "--ckpt_path" in capsys.readouterr().out


def test_help_answers_without_loading_torch() -> None:
    """``lmp-seg --help``, ``-h`` and no arguments print the usage from the console script
    alone: loading PyTorch and Lightning took 10 s of the answer."""
    out = _python(
        "import sys\n"
        "from lmp_lightning.console import main\n"
        "main(['--help'])\n"
        "main(['-h'])\n"
        "main([])\n"
        "print('torch' in sys.modules, 'lightning' in sys.modules)\n"
    )
    assert out.count("usage: lmp-seg [-h] [--version]") == 3
    assert "camvid/lmp" in out and "lmp-seg COMMAND --help" in out
    assert out.strip().splitlines()[-1] == "False False"


def test_fit_help_lists_the_data_sets_and_the_losses(capsys: pytest.CaptureFixture[str]) -> None:
    """``lmp-seg fit --help`` names what ``--data.dataset`` and ``--model.loss`` take: every
    registered data set, and every loss by class name and short name."""
    from lmp_lightning.data import list_datasets
    from lmp_lightning.losses import LOSSES

    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps the help text
    epilog = text[text.rindex("--model.loss takes") :]  # the help's last paragraph
    assert f"--data.dataset takes a registered data set: {', '.join(list_datasets())}" in epilog
    for short, cls in LOSSES.items():
        assert f"{cls.__name__} ({short})" in epilog
