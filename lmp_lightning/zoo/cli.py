"""``lmp-seg zoo list | info NAME | export CKPT --name NAME --out DIR | push DIR ...``."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from lmp_lightning.errors import InputError
from lmp_lightning.zoo.api import info
from lmp_lightning.zoo.card import WEIGHTS_DTYPES, ModelCard
from lmp_lightning.zoo.index import add_to_index, index_entry, read_index, resolve

if TYPE_CHECKING:
    from lmp_lightning.reports.results import ClassResults

__all__ = ["list_table", "push_entry", "zoo_main"]


def push_entry(
    directory: str | Path,
    repo_id: str | None = None,
    wandb_project: str | None = None,
    private: bool = False,
) -> list[str]:
    """Publishes an entry directory to the Hugging Face Hub and/or as a W&B model artifact.

    Returns:
        Where it went: the Hub commit URL and/or the artifact name.
    """
    directory = Path(directory)
    card = ModelCard.load(directory)  # refuses a directory that is not an entry
    if repo_id is None and wandb_project is None:
        raise ValueError("give --repo-id (Hugging Face Hub) and/or --wandb-project (W&B)")
    done = []
    if repo_id is not None:
        from huggingface_hub import HfApi

        api = HfApi()
        api.create_repo(repo_id, exist_ok=True, private=private)
        commit = api.upload_folder(
            repo_id=repo_id,
            folder_path=str(directory),
            commit_message=f"lmp-lightning zoo entry {card.name}",
        )
        done.append(str(getattr(commit, "commit_url", commit)))
    if wandb_project is not None:
        import wandb

        run = wandb.init(project=wandb_project, job_type="zoo-push")
        artifact = wandb.Artifact(card.name, type="model", metadata=card.to_dict())
        artifact.add_dir(str(directory))
        run.log_artifact(artifact)
        run.finish()
        done.append(f"{wandb_project}/{card.name}")
    return done


def list_table(index: str | Path | None = None) -> str:
    """The zoo's entries as a table: name, data set, architecture, encoder, mIoU and size.

    Reads the index and the local entries' cards only (no weights, no PyTorch); a remote entry
    that is not cached yet shows its address instead.
    """
    rows = [("name", "data set", "architecture", "encoder", "mIoU (%)", "size")]
    for name, entry in read_index(index).items():
        if entry.path is None:
            rows.append((name, "-", "-", "-", "-", f"remote: {entry.url}"))
            continue
        card = ModelCard.load(resolve(entry))
        miou = (card.metrics or {}).get("miou")
        size = sum(f.stat().st_size for f in entry.path.glob("*.safetensors"))
        rows.append(
            (
                name,
                card.dataset or "-",
                card.architecture,
                card.encoder,
                "-" if miou is None else f"{100 * miou:.1f} ({card.split or '?'})",
                f"{size / 2**20:.1f} MiB",
            )
        )
    if len(rows) == 1:
        return "(no entries in the zoo index)"
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _checkpoint_step(ckpt: Path) -> int | None:
    """The training step a Lightning checkpoint was saved at."""
    from lmp_lightning.checkpoints import load_checkpoint

    step = load_checkpoint(ckpt, what="checkpoint", mmap=True).get("global_step")
    return step if isinstance(step, int) else None


Validate = Callable[[Path, Path], "ClassResults"]
"""``validate(config_file, checkpoint)``: the checkpoint's per-class results on the val split
(``lmp_lightning.cli.validate_checkpoint``, which ``lmp-seg zoo export`` passes in)."""


def _results_for(
    ckpt: Path, config: str | None, validate: Validate | None = None
) -> str | ClassResults | None:
    """The metrics of a checkpoint: the run's ``results_val.json``, or, with the run's
    ``config.yaml``, ``validate(config, ckpt)`` now."""
    from lmp_lightning.reports.results import ClassResults

    for folder in (ckpt.parent.parent, ckpt.parent):
        if (folder / "results_val.json").is_file():
            path = folder / "results_val.json"
            step = ClassResults.load(path).step
            # a fit's file holds its last validation: the metrics of a checkpoint of that step
            if step is None or step == _checkpoint_step(ckpt):
                return str(path)
    found = (
        [Path(config)]
        if config
        else [ckpt.parent.parent / "config.yaml", ckpt.parent / "config.yaml"]
    )
    config_file = next((p for p in found if p.is_file()), None)
    if config_file is None:
        return None
    if validate is None:
        raise InputError(f"{ckpt} has no results file beside it; give its metrics with --results")
    return validate(config_file, ckpt)


def zoo_main(args: list[str], validate: Validate | None = None) -> None:
    """``lmp-seg zoo``: list, info, export, push.

    Args:
        args: the arguments after ``zoo``.
        validate: how ``export`` measures a checkpoint that has no results file (``lmp-seg``
            passes :func:`lmp_lightning.cli.validate_checkpoint`).
    """
    parser = argparse.ArgumentParser(prog="lmp-seg zoo", description="The model zoo.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the entries of the zoo index, as a table")
    show = sub.add_parser("info", help="an entry's card: a summary, or all of it with --json")
    show.add_argument("name", help="an entry name or an entry directory")
    show.add_argument("--json", action="store_true", help="the whole card (and path) as JSON")
    export = sub.add_parser("export", help="a Lightning checkpoint to a zoo entry")
    export.add_argument("ckpt", help="the checkpoint (.ckpt) of lmp-seg fit")
    export.add_argument("--name", required=True, help="the entry's name")
    export.add_argument("--out", required=True, help="the entry directory to create")
    export.add_argument(
        "--results",
        default=None,
        help="results_val.json with the metrics "
        "(default: the run's, or a validation of the checkpoint now)",
    )
    export.add_argument("--config", default=None, help="the run's config.yaml")
    export.add_argument(
        "--index",
        default=None,
        help="a zoo index.json (created if absent) to list the entry in; --out must be inside "
        "its folder",
    )
    export.add_argument("--license", default="MIT")
    export.add_argument(
        "--weights-dtype",
        default="float32",
        choices=list(WEIGHTS_DTYPES),
        help="the type the weights are stored in: float16 halves the file (zoo.load runs it in "
        "float32; the card's metrics are those of --results or of the checkpoint)",
    )
    push = sub.add_parser("push", help="an entry to the Hugging Face Hub and/or W&B")
    push.add_argument("directory")
    push.add_argument("--repo-id", default=None, help="Hugging Face Hub repository id")
    push.add_argument("--wandb-project", default=None, help="W&B project for a model artifact")
    push.add_argument("--private", action="store_true")
    opts = parser.parse_args(args)
    if opts.command == "list":
        print(list_table())
    elif opts.command == "info":
        card = info(opts.name)
        if opts.json:
            print(json.dumps(card, indent=2, default=str))
        else:
            print(ModelCard.from_dict({k: v for k, v in card.items() if k != "path"}).summary())
            print(f"Files in {card['path']}")
    elif opts.command == "export":
        out = Path(opts.out)  # checked before a validation that may take minutes
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise FileExistsError(f"refusing to write into non-empty {str(out)!r}")
        if not Path(opts.ckpt).is_file():
            raise FileNotFoundError(f"checkpoint not found: {opts.ckpt!r}")
        from lmp_lightning.zoo.export import export_checkpoint  # PyTorch: only to export

        path = export_checkpoint(
            opts.ckpt,
            opts.name,
            opts.out,
            results=opts.results or _results_for(Path(opts.ckpt), opts.config, validate),
            license=opts.license,
            config=opts.config,
            weights_dtype=opts.weights_dtype,
        )
        print(f"zoo entry written to {path}")
        if opts.index:
            add_to_index(path, opts.index, opts.name)
            print(f"listed as {opts.name!r} in {opts.index}")
        else:
            entry = json.dumps({opts.name: index_entry(path, path.parent)})
            print(
                "not listed in a zoo index: export with --index INDEX, or add this to the "
                f"'entries' of an index.json in {path.parent}:\n  {entry[1:-1]}"
            )
    else:
        for place in push_entry(opts.directory, opts.repo_id, opts.wandb_project, opts.private):
            print(f"pushed to {place}")
