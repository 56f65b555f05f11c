"""The CamVid study's driver (benchmarks/camvid_study.py) records a fit that a signal stops."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

STUDY = Path(__file__).resolve().parents[1] / "benchmarks" / "camvid_study.py"

# Stands in for `lmp-seg fit`: on SIGTERM it takes a moment (saving last.ckpt), then exits 0.
CHILD = """
import signal, sys, time
from pathlib import Path
folder = Path(sys.argv[1])
stop = []
signal.signal(signal.SIGTERM, lambda signum, frame: stop.append(signum))
(folder / "ready").write_text("")
deadline = time.monotonic() + 60
while not stop and time.monotonic() < deadline:
    time.sleep(0.05)
time.sleep(0.5)
(folder / "saved").write_text("")
"""

DRIVER = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("camvid_study", sys.argv[1])
study = importlib.util.module_from_spec(spec)
spec.loader.exec_module(study)
code, stopped_by = study._call([sys.executable, sys.argv[2], sys.argv[3]])
print(json.dumps({"code": code, "stopped_by": stopped_by}))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="process groups and SIGTERM are POSIX")
def test_a_process_group_sigterm_waits_for_the_fit_and_is_reported(tmp_path: Path) -> None:
    child = tmp_path / "child.py"
    child.write_text(textwrap.dedent(CHILD))
    driver = tmp_path / "driver.py"
    driver.write_text(textwrap.dedent(DRIVER))
    proc = subprocess.Popen(
        [sys.executable, str(driver), str(STUDY), str(child), str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as `setsid` gives the study
    )
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "ready").exists():
            assert proc.poll() is None, "the driver exited before its fit started"
            assert time.monotonic() < deadline, "the fit did not start"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGTERM)  # what `kill -TERM -- -PGID` does
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    # The driver outlived the signal, the fit finished saving, and the signal is reported.
    assert proc.returncode == 0, out
    assert (tmp_path / "saved").exists()
    assert json.loads(out) == {"code": 0, "stopped_by": int(signal.SIGTERM)}
