"""Fixtures for every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _no_run_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts without a run seed: ``lightning.seed_everything`` in one test (it sets
    ``PL_GLOBAL_SEED``) must not change the default data seed of the next."""
    monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)


@pytest.fixture(autouse=True, scope="session")
def _user_cache_in_a_temporary_folder(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The user's cache (class statistics, zoo downloads) goes to a temporary folder for the
    whole session, subprocesses included: tests leave nothing in ~/.cache."""
    import os

    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("user-cache"))


@pytest.fixture(autouse=True)
def _subnormals_kept() -> Iterator[None]:
    """Each test starts with subnormal floats: Inductor's kernels are built with ``-ffast-math``
    in torch 2.4 and 2.5 (not in the newest releases), which flushes them to zero for the whole
    process once a compiled function runs (pytorch/pytorch#126848); hypothesis then refuses to
    draw floats in a later test."""
    yield
    import torch

    torch.set_flush_denormal(False)
