"""What the zoo trusts: every file an entry is built from is pinned, a card's numbers are sane,
an index never reaches outside its folders, and a malformed file fails in one line.

Each test is a reported defect: a ``config.json`` pinned by nobody, a card whose ``std`` is 0 in
float32, an entry name or pinned file name with ``../``, an index nested too deeply to parse.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch.hub

from lmp_lightning.resources import zoo_dir
from lmp_lightning.zoo import (
    ModelCard,
    add_to_index,
    info,
    load,
    load_entry,
    read_index,
    resolve,
    sha256_file,
)
from lmp_lightning.zoo.card import CARD_FILE, CONFIG_FILE, WEIGHTS_FILE

FILES = (CARD_FILE, CONFIG_FILE, WEIGHTS_FILE)
ENTRY = "camvid-lmp"


@pytest.fixture
def entry(tmp_path: Path) -> Path:
    """A copy of a shipped entry in ``tmp_path/zoo/e``, beside where a test writes its index."""
    return Path(shutil.copytree(zoo_dir() / ENTRY, tmp_path / "zoo" / "e"))


def _pins(directory: Path, files: tuple[str, ...] = FILES) -> dict[str, str]:
    return {f: sha256_file(directory / f) for f in files}


def _index(path: Path, entries: dict[str, Any] | list[Any]) -> Path:
    path.write_text(json.dumps({"version": 1, "entries": entries}))
    return path


def _edit_json(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2))


def _old_card(entry: Path) -> None:
    """Makes the entry's card an older one: its digests cover the weights only."""
    _edit_json(entry / CARD_FILE, lambda card: card["weights_sha256"].pop(CONFIG_FILE))


def _other_network(config: dict[str, Any]) -> None:
    """Other atrous rates and output stride: the same weights load, the labels differ."""
    config["decoder_atrous_rates"] = [6, 12, 18]
    config["encoder_output_stride"] = 8


def _one_line(error: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(error.value)
    assert "\n" not in message.strip(), message
    return message


# --- 1. config.json is always pinned


@pytest.mark.parametrize(
    "spec",
    [
        {"path": "e"},
        {"url": "hub:org/demo@v1"},
        {"url": "https://example.org/e.tar.gz", "archive_sha256": "ab" * 32},
    ],
    ids=["local", "hub", "https"],
)
def test_an_index_entry_must_pin_the_config(entry: Path, spec: dict[str, Any]) -> None:
    pins = _pins(entry, (CARD_FILE, WEIGHTS_FILE))
    index = _index(entry.parent / "index.json", {"e": {**spec, "sha256": pins}})
    with pytest.raises(ValueError, match=r"entry 'e'.* must pin \['config\.json'\]") as error:
        read_index(index)
    _one_line(error)


def test_a_changed_config_under_an_old_card_never_loads(entry: Path) -> None:
    """The report: an older card, an index pinning the card and the weights, and a config.json
    with other atrous rates and output stride, which loaded and labelled 3 to 5% of pixels
    otherwise."""
    _old_card(entry)
    _edit_json(entry / CONFIG_FILE, _other_network)
    index = _index(
        entry.parent / "index.json",
        {"e": {"path": "e", "sha256": _pins(entry, (CARD_FILE, WEIGHTS_FILE))}},
    )
    with pytest.raises(ValueError, match=r"must pin \['config\.json'\]"):
        load("e", index)


@pytest.mark.parametrize("through", ["directory", "index"])
def test_a_card_whose_digests_miss_the_config_is_refused(entry: Path, through: str) -> None:
    _old_card(entry)
    _edit_json(entry / CONFIG_FILE, _other_network)
    index = _index(entry.parent / "index.json", {"e": {"path": "e", "sha256": _pins(entry)}})
    with pytest.raises(ValueError, match=r"card of 'camvid-lmp' .* no sha256 of 'config\.json'"):
        load(entry if through == "directory" else "e", index)


def test_the_shipped_entries_pin_their_config() -> None:
    for name, listed in read_index().items():
        directory = resolve(listed)
        digest = sha256_file(directory / CONFIG_FILE)
        assert listed.sha256[CONFIG_FILE] == digest, name
        assert ModelCard.load(directory).weights_sha256[CONFIG_FILE] == digest, name


# --- 2. a card's numbers are checked when it is read


def _card(**change: Any) -> ModelCard:
    fields = {
        "name": "demo",
        "architecture": "fpn",
        "encoder": "resnet18",
        "in_channels": 3,
        "num_classes": 2,
        "class_names": ["bg", "fg"],
    }
    return ModelCard(**{**fields, **change})


@pytest.mark.parametrize(
    ("change", "field", "allowed"),
    [
        ({"std": [1e-300] * 3}, "std", "[1e-06, 1000]"),  # 0 in float32: every label 0
        ({"std": [1e-7] * 3}, "std", "[1e-06, 1000]"),
        ({"std": [1e4] * 3}, "std", "[1e-06, 1000]"),
        ({"std": [True] * 3}, "std", "real numbers"),
        ({"mean": [True] * 3}, "mean", "real numbers"),
        ({"mean": [1e39] * 3}, "mean", "[-1000, 1000]"),  # inf in float32
        ({"mean": ["0.5"] * 3}, "mean", "real numbers"),
        ({"mean": 0.5}, "mean", "real numbers"),
        ({"input_scale": 1e-6}, "input_scale", "[0.05, 4]"),
        ({"input_scale": 50}, "input_scale", "[0.05, 4]"),
        ({"num_classes": True, "class_names": ["a"]}, "num_classes", "positive integer"),
        ({"num_classes": 0, "class_names": []}, "num_classes", "positive integer"),
        ({"num_classes": 2.0}, "num_classes", "positive integer"),
        ({"in_channels": True, "mean": [0.5], "std": [0.5]}, "in_channels", "positive integer"),
        ({"in_channels": 0, "mean": [], "std": []}, "in_channels", "positive integer"),
        ({"stride": 0}, "stride", "positive integer"),
        ({"ignore_index": True}, "ignore_index", "an integer or null"),
        ({"class_names": "ab"}, "class_names", "list"),
    ],
)
def test_a_card_with_bad_numbers_is_refused_when_read(
    change: dict[str, Any], field: str, allowed: str
) -> None:
    with pytest.raises(ValueError, match=rf"^card 'demo': {field} ") as error:
        _card(**change)
    assert allowed in _one_line(error)


def test_the_shipped_numbers_pass() -> None:
    card = _card(mean=[0.0, 0.5, 1.0], std=[1e-3, 0.5, 2.0], input_scale=0.5, ignore_index=None)
    assert card.std == [1e-3, 0.5, 2.0]
    assert _card(input_scale=0.05).input_scale == 0.05 and _card(input_scale=4).input_scale == 4


def test_a_card_file_with_bad_numbers_fails_when_read_not_at_segment(entry: Path) -> None:
    """``mean: [true, true, true]`` used to pass every check and fail inside ``segment()``."""
    _edit_json(entry / CARD_FILE, lambda card: card.__setitem__("mean", [True] * 3))
    with pytest.raises(ValueError, match=r"card\.json: card 'camvid-lmp': mean ") as error:
        info(entry)
    _one_line(error)


# --- 3. an index stays inside its folders


@pytest.mark.parametrize("name", ["../escape", "a/b", "a\\b", "..", "a..b", ".hidden", "-x", ""])
def test_entry_names_are_plain_names(entry: Path, name: str) -> None:
    index = _index(entry.parent / "index.json", {name: {"path": "e", "sha256": _pins(entry)}})
    with pytest.raises(ValueError, match=re.escape(f"entry {name!r}") + ".* plain name") as error:
        read_index(index)
    _one_line(error)


def test_add_to_index_refuses_a_name_that_is_not_plain(entry: Path) -> None:
    index = entry.parent / "index.json"
    with pytest.raises(ValueError, match=r"entry '\.\./x': not a plain name"):
        add_to_index(entry, index, name="../x")
    assert not index.exists()  # nothing written


def test_an_https_entry_cannot_leave_the_cache(
    entry: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An entry named ``../../planted`` used to resolve to a folder beside the cache, and a
    folder planted there loaded with no download."""
    cache = tmp_path / "a" / "b" / "cache"
    cache.mkdir(parents=True)  # as any earlier download leaves it
    monkeypatch.setenv("LMP_ZOO_CACHE", str(cache))
    downloads: list[str] = []
    monkeypatch.setattr(
        torch.hub, "download_url_to_file", lambda url, *_, **__: downloads.append(url)
    )
    digest = "ab" * 32
    shutil.copytree(entry, tmp_path / "a" / f"planted-{digest[:16]}")
    spec = {"url": "https://example.org/x.tar.gz", "archive_sha256": digest, "sha256": _pins(entry)}
    index = _index(tmp_path / "index.json", {"../../planted": spec})
    with pytest.raises(ValueError, match=r"entry '\.\./\.\./planted'.* plain name"):
        load("../../planted", index)
    assert not downloads and not list(cache.iterdir())


@pytest.mark.parametrize(
    "url", ["hub:org/demo@../../../../etc/hostname", "hub:../../x@v1", "hub:/abs@v1", "hub:@v1"]
)
def test_a_hub_entry_stays_in_the_hugging_face_cache(entry: Path, url: str) -> None:
    """A revision names a file under ``refs/`` of the Hugging Face cache, read as a commit."""
    index = _index(entry.parent / "index.json", {"e": {"url": url, "sha256": _pins(entry)}})
    with pytest.raises(ValueError, match=r"entry 'e': the repository and revision .* '\.\.'"):
        read_index(index)


def test_an_archive_digest_cannot_name_a_folder_outside_the_cache(entry: Path) -> None:
    """The first 16 characters of ``archive_sha256`` name the cache folder: hexadecimal only."""
    spec = {"url": "https://example.org/x.tar", "archive_sha256": "/../../../planted" + "0" * 47}
    index = _index(entry.parent / "index.json", {"e": {**spec, "sha256": _pins(entry)}})
    with pytest.raises(ValueError, match=r"entry 'e': 'archive_sha256' must be 64 hexadecimal"):
        read_index(index)


@pytest.mark.parametrize("file", ["/etc/hostname", "../../etc/passwd", "sub/card.json", "..\\x"])
def test_pinned_file_names_are_plain_names(entry: Path, file: str) -> None:
    pins = {**_pins(entry), file: "0" * 64}
    index = _index(entry.parent / "index.json", {"e": {"path": "e", "sha256": pins}})
    with pytest.raises(ValueError, match=rf"entry 'e'.*{re.escape(repr(file))}.* plain") as error:
        read_index(index)
    _one_line(error)
    with pytest.raises(ValueError, match=rf"weights_sha256 .*{re.escape(repr(file))}.* plain"):
        _card(weights_sha256={WEIGHTS_FILE: "0" * 64, file: "0" * 64})
    with pytest.raises(ValueError, match=rf"{re.escape(repr(file))} is not a plain file name"):
        load_entry(entry, {file: "0" * 64})  # never read nor hashed


@pytest.mark.parametrize("path", ["../outside", "/etc", "link", "e/../../outside"])
def test_a_local_entry_stays_in_the_zoo_folder(entry: Path, tmp_path: Path, path: str) -> None:
    shutil.copytree(entry, tmp_path / "outside")
    (entry.parent / "link").symlink_to(tmp_path / "outside")
    index = _index(entry.parent / "index.json", {"e": {"path": path, "sha256": _pins(entry)}})
    with pytest.raises(ValueError, match=rf"entry 'e': path {re.escape(repr(path))} leaves"):
        read_index(index)


def test_two_entries_of_one_name_are_refused(entry: Path) -> None:
    spec = json.dumps({"path": "e", "sha256": _pins(entry)})
    index = entry.parent / "index.json"
    index.write_text(f'{{"entries": {{"e": {spec}, "e": {spec}}}}}')
    with pytest.raises(ValueError, match=r"index\.json.*'e' twice") as error:
        read_index(index)
    _one_line(error)
    listed = [{"name": "e", **json.loads(spec)}, {"name": "e", **json.loads(spec)}]
    with pytest.raises(ValueError, match=r"index\.json.*'e' twice"):
        read_index(_index(index, listed))
    with pytest.raises(ValueError, match=r"index\.json: entry #0 has no 'name'"):
        read_index(_index(index, [json.loads(spec)]))


def test_a_file_pinned_twice_in_one_entry_is_refused(entry: Path) -> None:
    digests = ", ".join(f'"{f}": "{d}"' for f, d in _pins(entry).items())
    index = entry.parent / "index.json"
    again = f'"card.json": "{"0" * 64}"'
    index.write_text(f'{{"entries": {{"e": {{"path": "e", "sha256": {{{digests}, {again}}}}}}}}}')
    with pytest.raises(ValueError, match=r"index\.json.*'card\.json' twice"):
        read_index(index)


# --- 4. deep nesting fails in one line


DEEP = "[" * 100_000 + "]" * 100_000


def test_a_deeply_nested_index_fails_in_one_line(tmp_path: Path) -> None:
    index = tmp_path / "index.json"
    index.write_text(f'{{"entries": {DEEP}}}')
    with pytest.raises(ValueError, match=r"index\.json is nested too deeply") as error:
        read_index(index)
    _one_line(error)


def test_zoo_list_of_a_deeply_nested_index_fails_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from lmp_lightning.cli import main

    index = tmp_path / "index.json"
    index.write_text(f'{{"entries": {DEEP}}}')
    monkeypatch.setenv("LMP_ZOO_INDEX", str(index))
    with pytest.raises(SystemExit) as exit_info:
        main(["zoo", "list"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err[-2000:]
    lines = [line for line in err.splitlines() if line.startswith("lmp-seg: error:")]
    assert len(lines) == 1 and "nested too deeply" in lines[0], err[-2000:]


@pytest.mark.parametrize("file", [CARD_FILE, CONFIG_FILE])
def test_a_deeply_nested_card_or_config_fails_in_one_line(entry: Path, file: str) -> None:
    (entry / file).write_text(f'{{"name": {DEEP}}}')
    if file == CONFIG_FILE:  # pinned by the card: the nesting, not the digest, is what fails
        digest = sha256_file(entry / file)
        _edit_json(entry / CARD_FILE, lambda card: card["weights_sha256"].update({file: digest}))
    with pytest.raises(ValueError, match=rf"{re.escape(file)} is nested too deeply") as error:
        load(entry)
    _one_line(error)
