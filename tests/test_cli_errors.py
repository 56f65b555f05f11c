"""How a command's error becomes one line (lmp_lightning._cli_errors): from the error's type and
the command's input, never from another library's wording."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lmp_lightning._cli_errors import check_moved, one_line
from lmp_lightning.cli import main
from lmp_lightning.errors import InputError
from tests.cli_args import TINY


@pytest.mark.parametrize(
    ("section", "key", "new"),
    [
        ("model", "momentum", "--model.optimizer.momentum"),
        ("data", "dataset_options", "--data.dataset.scale 0.5"),
        ("data", "image_size", "--data.dataset.image_size"),
    ],
)
def test_a_moved_argument_in_a_config_file_names_its_new_spelling(
    section: str, key: str, new: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({section: {key: {"scale": 0.5} if "options" in key else 1}}))
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", f"--config={config}", f"--trainer.default_root_dir={tmp_path}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"lmp-seg: error: --{section}.{key} (") and new in err


def test_check_moved_drops_the_hidden_keys_left_unset() -> None:
    from jsonargparse import Namespace

    config = Namespace(model=Namespace(lr=None, loss="ce"), data=Namespace(dataset_options=None))
    check_moved(config)
    assert config == Namespace(model=Namespace(loss="ce"), data=Namespace())
    with pytest.raises(InputError, match=r"--model\.lr .* is --model\.optimizer\.lr now"):
        check_moved(Namespace(model=Namespace(lr=0.1)))


def test_a_refused_value_in_a_config_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No flag to blame: jsonargparse's own reason, on one line."""
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"data": {"mean": [0.5, 0.5]}}))
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *TINY, f"--config={config}", f"--trainer.default_root_dir={tmp_path}"])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("lmp-seg: error: ") and "data.mean" in lines[0]
    assert "3" in lines[0]  # the reason: a tuple of three


def test_one_line_of_a_multi_line_message() -> None:
    assert one_line(ValueError("first\n  second\n")) == "first second"
    # the last line of a worker's traceback is taken only when it names the error's own type
    assert one_line(OSError("Caught OSError.\nTraceback\nOSError: disk gone")) == "disk gone"
    assert one_line(OSError("a\nValueError: b")) == "a ValueError: b"
