"""The zoo index (``zoo/index.json``): the single source of truth for which entries exist.

An entry is local (``{"path": "<dir relative to zoo/>"}``) or remote, and every entry pins the
SHA-256 of the files it is built from, ``card.json``, ``config.json`` and ``model.safetensors``:
``{"url": "hub:<repo_id>@<revision>", "sha256": {...}}`` (a Hugging Face Hub repository at a
pinned revision, cached by huggingface_hub) or
``{"url": "https://.../<entry>.tar.gz", "archive_sha256": "...", "sha256": {...}}`` (an archive
of the entry directory, cached under ``~/.cache/lmp_lightning/zoo``, or ``$XDG_CACHE_HOME``).

An index never reaches outside its folders: entry names and pinned file names are plain names
(:func:`~lmp_lightning.zoo.card.is_plain_name`), a local entry lies inside the index's folder,
and a name given twice is refused.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmp_lightning.resources import zoo_dir
from lmp_lightning.zoo.card import (
    CARD_FILE,
    CONFIG_FILE,
    WEIGHTS_FILE,
    ModelCard,
    check_pins,
    is_plain_name,
    read_json,
    sha256_file,
)

__all__ = [
    "DEFAULT_INDEX",
    "ZooEntry",
    "add_to_index",
    "cache_dir",
    "index_entry",
    "read_index",
    "resolve",
]

DEFAULT_INDEX = zoo_dir() / "index.json"
"""The shipped index (``zoo/index.json`` of the repository, ``lmp_lightning/zoo_entries/`` of
an installed wheel); ``LMP_ZOO_INDEX`` overrides it."""


def cache_dir() -> Path:
    """Where https entries are cached: ``$LMP_ZOO_CACHE``, else ``lmp_lightning/zoo`` in the
    user's cache (``$XDG_CACHE_HOME``, by default ``~/.cache``), beside the class statistics.

    Example:
        >>> cache_dir().parts[-2:]
        ('lmp_lightning', 'zoo')
    """
    given = os.environ.get("LMP_ZOO_CACHE")
    if given:
        return Path(given).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "lmp_lightning" / "zoo"


@dataclass(frozen=True)
class ZooEntry:
    """One entry of the index.

    Attributes:
        name: the entry's name (a plain name: it names the entry's cache folder).
        path: the local directory (absolute), for entries in the repository.
        url: ``hub:<repo_id>@<revision>`` or an https URL of an archive, for remote entries.
        sha256: SHA-256 of the entry's files by plain file name (``card.json``,
            ``config.json`` and ``model.safetensors`` at least), checked on every load.
        archive_sha256: SHA-256 of the downloaded archive (https entries).
    """

    name: str
    path: Path | None = None
    url: str | None = None
    sha256: dict[str, str] = field(default_factory=dict)
    archive_sha256: str | None = None


def read_index(path: str | Path | None = None) -> dict[str, ZooEntry]:
    """The entries of a zoo index, by name.

    Every entry must pin the SHA-256 of ``card.json``, ``config.json`` (the network: other atrous
    rates or output stride load the same weights and label otherwise) and
    ``model.safetensors``. Entry names and pinned file names must be plain names
    (:func:`~lmp_lightning.zoo.card.is_plain_name`: no ``/``, ``\\`` or ``..``), a local
    entry's ``path`` must stay inside the index's folder, and no name may be given twice.

    Args:
        path: the ``index.json``; default ``$LMP_ZOO_INDEX`` or :data:`DEFAULT_INDEX`.

    Returns:
        The entries by name, in file order.

    Raises:
        FileNotFoundError: no index file (the message names it).
        ValueError: a malformed index or entry, a missing pin, a name that is not plain or is
            given twice, a path outside the folder, or JSON nested too deeply (one line naming
            the file and the entry).

    Example:
        >>> sorted(read_index()["camvid-lmp"].sha256)
        ['card.json', 'config.json', 'model.safetensors']
    """
    path = Path(path or os.environ.get("LMP_ZOO_INDEX") or DEFAULT_INDEX)
    if not path.is_file():
        raise FileNotFoundError(f"zoo index not found: {str(path)!r}")
    data = read_json(path)  # a name twice in the 'entries' mapping is refused there
    raw = data.get("entries") if isinstance(data, dict) else None
    if isinstance(raw, list):
        items: list[tuple[str, Any]] = []
        for number, spec in enumerate(raw):
            if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
                raise ValueError(f"{path}: entry #{number} has no 'name' (a plain name string)")
            items.append((spec["name"], spec))
    elif isinstance(raw, dict):
        items = list(raw.items())
    else:
        raise ValueError(f"{path} has no 'entries' list or mapping")
    entries: dict[str, ZooEntry] = {}
    for name, spec in items:
        if name in entries:
            raise ValueError(f"{path} lists the entry {name!r} twice")
        entries[name] = _entry(name, spec, path)
    return entries


_HEX64 = re.compile(r"[0-9a-f]{64}")
PINNED_FILES = (CARD_FILE, CONFIG_FILE, WEIGHTS_FILE)
"""The files every index entry pins: the card (classes, normalisation), the network's
configuration and the weights."""


def _check_name(name: object, where: str) -> None:
    if not is_plain_name(name):
        raise ValueError(
            f"{where}: not a plain name (letters, digits, '.', '_' and '-', starting with a "
            "letter or digit, no '..'): an entry's name names its folders"
        )


def _is_hub_name(name: str) -> bool:
    """A repository id or revision that stays in its Hugging Face cache folder (git refs and
    repository ids never hold ``..``)."""
    return bool(name) and not name.startswith("/") and "\\" not in name and ".." not in name


def _entry(name: str, spec: Any, index: Path) -> ZooEntry:
    where = f"{index}: entry {name!r}"
    _check_name(name, where)
    if not isinstance(spec, dict) or ("path" in spec) == ("url" in spec):
        raise ValueError(f"{where} needs exactly one of 'path' or 'url'")
    for key in ("path", "url", "archive_sha256"):
        if key in spec and not isinstance(spec[key], str):
            raise ValueError(f"{where}: {key!r} must be a string, got {spec[key]!r}")
    sha256 = check_pins(spec.get("sha256") or {}, where, "'sha256'")
    missing = set(PINNED_FILES) - set(sha256)
    if missing:
        raise ValueError(
            f"{where}: 'sha256' must pin {sorted(missing)} too (every entry pins card.json, "
            "config.json and model.safetensors: the classes, the network and the weights)"
        )
    if "path" in spec:
        local = (index.parent / spec["path"]).resolve()
        if not local.is_relative_to(index.parent.resolve()):
            raise ValueError(f"{where}: path {spec['path']!r} leaves {index.parent}")
        return ZooEntry(name, path=local, sha256=sha256)
    url = str(spec["url"])
    if not url.startswith(("hub:", "https://")):
        raise ValueError(
            f"{where}: url must be 'hub:<repo_id>@<revision>' or https://, not {url!r}"
        )
    if url.startswith("hub:") and "@" not in url:
        raise ValueError(f"{where}: pin a revision, 'hub:<repo_id>@<revision>', not {url!r}")
    if url.startswith("hub:") and not all(map(_is_hub_name, url[4:].rsplit("@", 1))):
        raise ValueError(  # both name folders and files of the Hugging Face cache
            f"{where}: the repository and revision of 'hub:<repo_id>@<revision>' must be "
            f"non-empty, without '..', '\\' or a leading '/', not {url!r}"
        )
    if url.startswith("https://") and not spec.get("archive_sha256"):
        raise ValueError(f"{where}: an https entry needs the 'archive_sha256' of its archive")
    if "archive_sha256" in spec and not _HEX64.fullmatch(spec["archive_sha256"].lower()):
        raise ValueError(  # it names the cache folder too
            f"{where}: 'archive_sha256' must be 64 hexadecimal digits, got "
            f"{spec['archive_sha256']!r}"
        )
    return ZooEntry(name, url=url, sha256=sha256, archive_sha256=spec.get("archive_sha256"))


def resolve(entry: ZooEntry) -> Path:
    """The local directory of an entry; downloads a remote entry unless it is cached.

    A Hub entry is looked up in the huggingface_hub cache first (``local_files_only=True``) and
    downloaded only when it is not there and ``HF_HUB_OFFLINE`` is not set. An https entry is
    downloaded by ``torch.hub.download_url_to_file``, which checks the archive's SHA-256, and
    unpacked into :func:`cache_dir`, in a folder named after the entry's plain name and the
    archive's digest, so never outside it. The files' digests are checked when the entry is
    loaded.

    Raises:
        FileNotFoundError: a local entry's directory is missing.
        ConnectionError: a remote entry is not cached and cannot be downloaded.
        ValueError: the downloaded archive's SHA-256 differs from the index, or it is no archive,
            or (an entry not read by :func:`read_index`) its name is not plain or its
            ``archive_sha256`` not 64 hexadecimal digits.
    """
    if entry.path is not None:
        if not entry.path.is_dir():
            raise FileNotFoundError(f"zoo entry {entry.name!r}: directory not found: {entry.path}")
        return entry.path
    assert entry.url is not None  # guaranteed by _entry
    if entry.url.startswith("hub:"):
        repo_id, revision = entry.url[4:].rsplit("@", 1)
        return _hub_snapshot(entry.name, repo_id, revision)
    return _https_entry(entry)


def _hub_snapshot(name: str, repo_id: str, revision: str) -> Path:
    from huggingface_hub import constants, snapshot_download  # here: listing stays fast
    from huggingface_hub.errors import LocalEntryNotFoundError

    where = f"zoo entry {name!r} (hub:{repo_id}@{revision})"
    try:
        return Path(snapshot_download(repo_id, revision=revision, local_files_only=True))
    except LocalEntryNotFoundError:
        pass
    if constants.HF_HUB_OFFLINE:
        raise ConnectionError(
            f"{where} is not in the Hugging Face cache and HF_HUB_OFFLINE is set; download it "
            "once with network access"
        )
    try:
        return Path(snapshot_download(repo_id, revision=revision))
    except OSError as error:  # no connection, no such repository or revision: all OSErrors
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConnectionError(
            f"{where} is not in the Hugging Face cache and cannot be downloaded: {detail}"
        ) from None


def _https_entry(entry: ZooEntry) -> Path:
    import torch.hub  # here: listing the zoo loads no torch

    assert entry.url is not None and entry.archive_sha256 is not None
    _check_name(entry.name, f"zoo entry {entry.name!r}")  # read_index checks it; a ZooEntry may not
    if not _HEX64.fullmatch(entry.archive_sha256.lower()):
        raise ValueError(
            f"zoo entry {entry.name!r}: archive_sha256 must be 64 hexadecimal digits, got "
            f"{entry.archive_sha256!r}"
        )
    target = cache_dir() / f"{entry.name}-{entry.archive_sha256[:16]}"
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        name = Path(urllib.parse.urlparse(entry.url).path).name
        archive = Path(tmp) / (name if is_plain_name(name) else "archive")
        try:
            torch.hub.download_url_to_file(
                entry.url, str(archive), hash_prefix=entry.archive_sha256.lower()
            )
        except OSError as error:  # urllib's URLError and HTTPError
            raise ConnectionError(
                f"zoo entry {entry.name!r} is not cached in {target.parent} and {entry.url} "
                f"cannot be downloaded (offline?): {error}"
            ) from None
        except RuntimeError as error:  # torch.hub: 'invalid hash value (expected ..., got ...)'
            raise ValueError(
                f"sha256 mismatch for {entry.url} ({error}): the download is corrupt or the "
                "index's archive_sha256 is wrong"
            ) from None
        unpacked = Path(tmp) / "entry"
        try:
            shutil.unpack_archive(archive, unpacked, filter="data")
        except shutil.ReadError:
            raise ValueError(
                f"zoo entry {entry.name!r}: {entry.url} is not a .tar.gz, .tar or .zip archive"
            ) from None
        children = list(unpacked.iterdir())
        root = children[0] if len(children) == 1 and children[0].is_dir() else unpacked
        root.rename(target)
    return target


def index_entry(directory: str | Path, folder: str | Path) -> dict[str, Any]:
    """The index entry of a local entry directory: its path relative to the index's ``folder``
    and the SHA-256 of its card, configuration and weights.

    Raises:
        FileNotFoundError: the directory lacks one of those files (the message names it).
    """
    directory = Path(directory).resolve()
    return {
        "path": os.path.relpath(directory, Path(folder).resolve()).replace(os.sep, "/"),
        "sha256": {f: sha256_file(directory / f) for f in (CARD_FILE, CONFIG_FILE, WEIGHTS_FILE)},
    }


def add_to_index(directory: str | Path, index: str | Path, name: str | None = None) -> ZooEntry:
    """Lists an entry directory in a zoo index, pinning the SHA-256 of its card, configuration
    and weights (what ``lmp-seg zoo export --index`` does).

    The index is created if it does not exist; its other entries and keys are kept. An entry of
    the same name is replaced only when it has the same directory.

    Args:
        directory: the entry directory, inside the index's folder (an index lists a local entry
            by its path relative to that folder).
        index: the ``index.json``.
        name: the entry's name; default: the card's.

    Returns:
        The entry, as :func:`read_index` reads it.

    Raises:
        FileNotFoundError: the directory lacks ``card.json``, ``config.json`` or the weights.
        ValueError: the directory is outside the index's folder, the name is not a plain name
            (:func:`~lmp_lightning.zoo.card.is_plain_name`), the index lists another entry
            under that name, or the index is malformed (see :func:`read_index`).

    Example:
        >>> import shutil, tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = shutil.copytree(zoo_dir() / "camvid-lmp", folder / "camvid-lmp")
        >>> entry = add_to_index(folder / "camvid-lmp", folder / "index.json")
        >>> entry.name, sorted(entry.sha256)
        ('camvid-lmp', ['card.json', 'config.json', 'model.safetensors'])
    """
    directory, index = Path(directory).resolve(), Path(index)
    folder = index.parent.resolve()
    if not directory.is_relative_to(folder):
        raise ValueError(
            f"{str(directory)!r} is not inside {str(folder)!r}, the folder of {index}: an index "
            "lists a local entry by its path relative to that folder (for an entry elsewhere, "
            "push it to the Hub and add its 'url')"
        )
    name = name or ModelCard.load(directory).name
    _check_name(name, f"{index}: entry {name!r}")
    entries = read_index(index) if index.is_file() else {}
    if name in entries and entries[name].path != directory:
        raise ValueError(
            f"{index} already lists {name!r} ({entries[name].path or entries[name].url}); "
            "pick another name or remove that entry first"
        )
    spec = index_entry(directory, folder)
    data: dict[str, Any] = read_json(index) if index.is_file() else {"version": 1, "entries": {}}
    if isinstance(data["entries"], list):
        kept = [e for e in data["entries"] if e.get("name") != name]
        data["entries"] = [*kept, {"name": name, **spec}]
    else:
        data["entries"][name] = spec
    partial = index.with_name(index.name + ".partial")
    partial.write_text(json.dumps(data, indent=2) + "\n")
    partial.replace(index)
    return read_index(index)[name]
