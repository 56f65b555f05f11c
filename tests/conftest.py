"""Fixtures for every test."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_run_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts without a run seed: ``lightning.seed_everything`` in one test (it sets
    ``PL_GLOBAL_SEED``) must not change the default data seed of the next."""
    monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)
