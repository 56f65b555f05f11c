"""Tests of lmp_lightning/zoo/index.py: remote entries from a Hugging Face cache or an https
archive (all local: a cache folder made here, ``file://`` URLs), and listing entries in an index.
"""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path
from typing import Any

import huggingface_hub
import pytest
import torch.hub
from huggingface_hub import constants
from huggingface_hub.errors import LocalEntryNotFoundError

from lmp_lightning.resources import zoo_dir
from lmp_lightning.zoo import add_to_index, list_models, load, read_index, sha256_file

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def entry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of a shipped entry."""
    return Path(shutil.copytree(zoo_dir() / "camvid-lmp", tmp_path_factory.mktemp("e") / "e"))


def _pins(entry: Path) -> dict[str, str]:
    return {f: sha256_file(entry / f) for f in ("card.json", "config.json", "model.safetensors")}


def _index(tmp_path: Path, spec: dict[str, Any]) -> Path:
    index = tmp_path / "index.json"
    index.write_text(json.dumps({"entries": {"remote": spec}}))
    return index


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty huggingface_hub cache, online unless a test says otherwise."""
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    return tmp_path / "hub"


def _cache_snapshot(cache: Path, entry: Path, revision: str = "v1") -> None:
    """``org/demo`` at ``revision`` in huggingface_hub's cache layout, as a download leaves it."""
    repo = cache / "models--org--demo"
    shutil.copytree(entry, repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir()
    (repo / "refs" / revision).write_text(COMMIT)


@pytest.fixture
def snapshot_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The keyword arguments of every ``snapshot_download`` call; the real function answers."""
    calls: list[dict[str, Any]] = []
    real = huggingface_hub.snapshot_download

    def spy(repo_id: str, **kwargs: Any) -> str:
        calls.append(kwargs)
        return real(repo_id, **kwargs)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", spy)
    return calls


def test_hub_entry_loads_from_the_cache_without_the_network(
    entry: Path, tmp_path: Path, hub_cache: Path, snapshot_calls: list
) -> None:
    _cache_snapshot(hub_cache, entry)
    index = _index(tmp_path, {"url": "hub:org/demo@v1", "sha256": _pins(entry)})
    assert load("remote", index).card.name == "camvid-lmp"
    assert snapshot_calls == [{"revision": "v1", "local_files_only": True}]


def test_hub_entry_is_downloaded_once(
    entry: Path, tmp_path: Path, hub_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    downloads: list[str] = []
    real = huggingface_hub.snapshot_download

    def hub(repo_id: str, revision: str, local_files_only: bool = False) -> str:
        if not local_files_only:  # the Hub: the files land in the cache
            downloads.append(f"{repo_id}@{revision}")
            _cache_snapshot(hub_cache, entry, revision)
        return real(repo_id, revision=revision, local_files_only=True)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", hub)
    index = _index(tmp_path, {"url": "hub:org/demo@v1", "sha256": _pins(entry)})
    assert load("remote", index).card.name == "camvid-lmp"
    assert load("remote", index).card.name == "camvid-lmp"
    assert downloads == ["org/demo@v1"]


def test_hub_entry_offline_and_not_cached_fails_at_once(
    tmp_path: Path, hub_cache: Path, snapshot_calls: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    index = _index(tmp_path, {"url": "hub:org/demo@v1", "sha256": _pins(zoo_dir() / "camvid-lmp")})
    with pytest.raises(ConnectionError, match=r"hub:org/demo@v1\) is not in .* HF_HUB_OFFLINE"):
        load("remote", index)
    assert [call["local_files_only"] for call in snapshot_calls] == [True]


def test_hub_entry_unreachable(
    tmp_path: Path, hub_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(repo_id: str, revision: str, local_files_only: bool = False) -> str:
        raise LocalEntryNotFoundError("An error happened while trying to locate the files")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", unreachable)
    index = _index(tmp_path, {"url": "hub:org/demo@v1", "sha256": _pins(zoo_dir() / "camvid-lmp")})
    with pytest.raises(ConnectionError, match="cannot be downloaded: An error happened"):
        load("remote", index)


def test_hub_entry_with_a_changed_file_is_refused(
    entry: Path, tmp_path: Path, hub_cache: Path
) -> None:
    _cache_snapshot(hub_cache, entry)
    config = hub_cache / "models--org--demo" / "snapshots" / COMMIT / "config.json"
    config.write_text(config.read_text().replace('"activation": null', '"activation": "sigmoid"'))
    index = _index(tmp_path, {"url": "hub:org/demo@v1", "sha256": _pins(entry)})
    with pytest.raises(ValueError, match=r"sha256 mismatch for '.*config\.json': the zoo index"):
        load("remote", index)


@pytest.fixture
def archive(entry: Path, tmp_path: Path) -> Path:
    path = tmp_path / "camvid-lmp.tar"
    with tarfile.open(path, "w") as tar:
        tar.add(entry, arcname="camvid-lmp")
    return path


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """https://example.org/NAME is served from ``tmp_path/NAME`` through torch.hub's own download
    (and its hash check); returns the URLs downloaded."""
    monkeypatch.setenv("LMP_ZOO_CACHE", str(tmp_path / "cache"))
    downloads: list[str] = []
    real = torch.hub.download_url_to_file

    def serve(url: str, dst: str, hash_prefix: str | None = None) -> None:
        downloads.append(url)
        local = (tmp_path / url.removeprefix("https://example.org/")).as_uri()
        real(local, dst, hash_prefix=hash_prefix, progress=False)

    monkeypatch.setattr(torch.hub, "download_url_to_file", serve)
    return downloads


def test_https_entry_is_downloaded_verified_and_cached(
    entry: Path, archive: Path, tmp_path: Path, served: list[str]
) -> None:
    spec = {
        "url": "https://example.org/camvid-lmp.tar",
        "archive_sha256": sha256_file(archive),
        "sha256": _pins(entry),
    }
    index = _index(tmp_path, spec)
    assert load("remote", index).card.name == "camvid-lmp"
    assert load("remote", index).card.name == "camvid-lmp"  # from the cache
    assert served == [spec["url"]]


@pytest.mark.parametrize(
    ("url", "digest", "error", "message"),
    [
        ("camvid-lmp.tar", "ab" * 32, ValueError, r"sha256 mismatch for https://.*(ab){32}"),
        ("missing.tar.gz", "ab" * 32, ConnectionError, "missing.tar.gz cannot be downloaded"),
        ("card.json", None, ValueError, r"card.json is not a \.tar\.gz, \.tar or \.zip archive"),
    ],
    ids=["digest-mismatch", "unreachable", "not-an-archive"],
)
def test_https_entry_errors(
    entry: Path,
    archive: Path,
    tmp_path: Path,
    served: list[str],
    url: str,
    digest: str | None,
    error: type[Exception],
    message: str,
) -> None:
    shutil.copy(entry / "card.json", tmp_path)
    spec = {
        "url": f"https://example.org/{url}",
        "archive_sha256": digest or sha256_file(tmp_path / url),
        "sha256": _pins(entry),
    }
    with pytest.raises(error, match=message):
        load("remote", _index(tmp_path, spec))
    assert not list((tmp_path / "cache").iterdir())  # nothing half-written is cached


def test_add_to_index(entry: Path, tmp_path: Path) -> None:
    zoo = tmp_path / "zoo"
    shutil.copytree(entry, zoo / "models" / "a")
    index = zoo / "index.json"
    index.write_text(json.dumps({"version": 1, "note": "kept", "entries": {}}))
    added = add_to_index(zoo / "models" / "a", index)
    assert added.name == "camvid-lmp" and added.sha256 == _pins(entry)
    assert json.loads(index.read_text())["entries"]["camvid-lmp"]["path"] == "models/a"
    assert load("camvid-lmp", index).card.name == "camvid-lmp"
    add_to_index(zoo / "models" / "a", index)  # again: the same entry, its digests renewed
    assert list_models(index) == ["camvid-lmp"] and json.loads(index.read_text())["note"] == "kept"
    shutil.copytree(entry, zoo / "b")
    with pytest.raises(ValueError, match=r"already lists 'camvid-lmp'"):
        add_to_index(zoo / "b", index)
    assert add_to_index(zoo / "b", index, name="b").path == (zoo / "b").resolve()
    with pytest.raises(ValueError, match="is not inside"):
        add_to_index(entry, index, name="c")


def test_add_to_index_of_a_list_or_a_new_index(entry: Path, tmp_path: Path) -> None:
    shutil.copytree(entry, tmp_path / "a")
    listed = tmp_path / "listed.json"
    listed.write_text(json.dumps({"entries": [{"name": "x", "url": "hub:o/x@1", "sha256": {}}]}))
    with pytest.raises(ValueError, match="must pin"):  # a malformed index is not rewritten
        add_to_index(tmp_path / "a", listed)
    listed.write_text(
        json.dumps({"entries": [{"name": "x", "url": "hub:o/x@1", "sha256": _pins(entry)}]})
    )
    add_to_index(tmp_path / "a", listed, name="a")
    assert list(read_index(listed)) == ["x", "a"]
    add_to_index(tmp_path / "a", tmp_path / "new.json")
    assert list_models(tmp_path / "new.json") == ["camvid-lmp"]


def test_the_download_cache_follows_the_user_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lmp_lightning.zoo.index import cache_dir

    monkeypatch.delenv("LMP_ZOO_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "lmp_lightning" / "zoo"
    monkeypatch.setenv("LMP_ZOO_CACHE", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"
