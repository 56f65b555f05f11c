"""A normal ``lmp-seg`` run shows no adverts or deprecation notices of its dependencies, and
still shows its own output and the other warnings and information of Lightning."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.cli_args import TINY

ROOT = Path(__file__).resolve().parents[1]

NOISE = {
    "💡 Tip": "Lightning's adverts for litlogger and litmodels",
    "litlogger": "Lightning's advert for its cloud logger",
    "litmodels": "Lightning's advert for its model registry",
    "LeafSpec": "the deprecation warning of torch's pytree that Lightning triggers",
    "tensorboardX": "Lightning's notice that tensorboardX is no longer one of its dependencies",
    "No seed found": "Lightning's warning of a run without a seed (lmp-seg's default seed is 0)",
}
"""Text of the known notices, with what each one is."""


def test_a_fit_shows_no_adverts_or_deprecation_notices(tmp_path: Path) -> None:
    """A tiny fit through the console script (a subprocess: the lines are printed by logging
    handlers and ``warnings``, which pytest would otherwise capture) prints none of
    :data:`NOISE`; the per-class table, Lightning's information and its warning about the
    logging interval still appear."""
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "from lmp_lightning.console import main; main()",
            "fit",
            *TINY,
            "--model.arch=fpn",
            "--model.encoder_name=resnet18",
            "--trainer.max_epochs=1",
            f"--trainer.default_root_dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    output = out.stdout + out.stderr
    assert out.returncode == 0, output[-3000:]
    shown = {text: what for text, what in NOISE.items() if text in output}
    assert not shown, f"{shown}\n{output}"
    assert "Per-class IoU (val" in output  # ours
    assert "GPU available:" in output  # Lightning's own logging is not silenced
    assert "log_every_n_steps" in output  # nor are its other warnings
    (config,) = tmp_path.rglob("config.yaml")
    assert "seed_everything: 0\n" in config.read_text()  # the seed a run without one took
