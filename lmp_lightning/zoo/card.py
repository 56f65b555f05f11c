"""Model cards: the machine-readable ``card.json`` of a zoo entry and the README made from it.

``card.json`` is the source; the entry's ``README.md`` is generated from it, with the YAML front
matter of a Hugging Face Hub model card (license, library, tags, data set and the mIoU as a
``model-index`` result) rendered by ``huggingface_hub.ModelCard``, so that an entry pushed to the
Hub is described and searchable there.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from lmp_lightning._hashing import sha256_file
from lmp_lightning.zoo.files import check_pins, is_plain_name, read_json

__all__ = [
    "CARD_FILE",
    "CONFIG_FILE",
    "INPUT_SCALE_RANGE",
    "MEAN_RANGE",
    "STD_RANGE",
    "WEIGHTS_DTYPES",
    "WEIGHTS_FILE",
    "ModelCard",
    "check_pins",
    "is_plain_name",
    "read_json",
    "sha256_file",
]

CARD_FILE = "card.json"
CONFIG_FILE = "config.json"
"""segmentation_models_pytorch's configuration of the network (``save_pretrained``)."""
WEIGHTS_FILE = "model.safetensors"

MEAN_RANGE = (-1e3, 1e3)
"""The allowed range of each normalisation mean (on [0, 1] pixel values)."""
STD_RANGE = (1e-6, 1e3)
"""The allowed range of each normalisation standard deviation: finite and > 0 in float32 too,
the dtype ``segment`` normalises in (``1e-300`` is 0 there and would make every label 0)."""
INPUT_SCALE_RANGE = (0.05, 4.0)
"""The allowed range of ``input_scale``: the data sets are trained at 0.5 (CamVid) to 1.0;
below 0.05 a 2048x1024 image shrinks to fewer than four stride-32 cells a side, above 4 an image
grows to 16 times its pixels."""
WEIGHTS_DTYPES = ("float32", "float16", "bfloat16")
"""The types an entry's weights may be stored in (``weights_dtype``)."""


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _fmt(bounds: tuple[float, float]) -> str:
    return f"[{bounds[0]:g}, {bounds[1]:g}]"


@dataclass
class ModelCard:
    """What a zoo entry is: its model, data, training, metrics and weights digests.

    Attributes:
        name: the entry's name in the zoo.
        architecture: segmentation_models_pytorch architecture (``fpn``, ``unet``, ...).
        encoder: its encoder (``resnet18``, ...).
        in_channels: input channels.
        num_classes: output classes.
        class_names: class names in label order.
        ignore_index: the label of pixels that took no part in training.
        mean: per-channel normalisation mean (on [0, 1] pixel values).
        std: per-channel normalisation standard deviation.
        stride: the multiple that an input's height and width are padded to.
        input_scale: the factor an input image is resized by before the network: the scale of
            the training and evaluation images (``0.5`` for CamVid at 240x180). ``segment``
            applies it and returns labels at the input's size.
        encoder_weights: the pretrained encoder weights training started from (``None``: none
            or unknown).
        crop_size: training crop size (``None`` when unknown).
        scale_range: training random scale range (``None`` when unknown).
        dataset: the training data set (``None`` when unknown).
        split: the split the metrics were measured on (``None`` without metrics).
        loss: the loss as ``{"class_path": ..., "init_args": {...}}`` (``None`` when unknown).
        sampler: the sampling callback as ``{"class_path": ..., "init_args": {...}}`` or ``None``.
        training_config: the full training configuration (the CLI's ``config.yaml``) or ``{}``.
        metrics: ``{"miou": float, "iou": [...], "pixel_counts": [...]}`` (per class, in label
            order; NaN IoU stored as ``null``) or ``{}``.
        weights_sha256: SHA-256 of every file the model is loaded from (``model.safetensors``
            and ``config.json``), by plain file name; a card without both is not loaded.
        license: the license of the weights.
        date: the export date (ISO 8601).
        version: the lmp_lightning version that exported the entry.
        source_checkpoint: the file name of the exported checkpoint.
        weights_dtype: the floating-point type of the stored weights (one of
            :data:`WEIGHTS_DTYPES`; ``"float16"`` halves the file). :func:`~lmp_lightning.zoo.load`
            runs them in float32 unless asked for another type.

    The numbers are checked when a card is made or read, each failure one line naming the field
    and what is allowed: ``in_channels``, ``num_classes`` and ``stride`` are positive integers,
    ``ignore_index`` an integer or ``None``, ``class_names`` a list of ``num_classes`` distinct
    non-empty names, ``mean`` and ``std`` lists of ``in_channels`` real numbers (not booleans)
    in :data:`MEAN_RANGE` and :data:`STD_RANGE` (so finite, and std > 0, in float32 too),
    ``input_scale`` a real number in :data:`INPUT_SCALE_RANGE`, ``weights_sha256`` plain file
    names to SHA-256 digests (:func:`check_pins`).

    Raises:
        ValueError: a field breaks one of those rules.

    Example:
        >>> card = ModelCard(name="demo", architecture="fpn", encoder="resnet18", in_channels=3,
        ...                  num_classes=2, class_names=["bg", "fg"])
        >>> ModelCard.from_dict(card.to_dict()) == card
        True
        >>> ModelCard(name="demo", architecture="fpn", encoder="resnet18",  # doctest: +ELLIPSIS
        ...           in_channels=3, num_classes=2, class_names=["bg", "fg"], std=[1e-300] * 3)
        Traceback (most recent call last):
        ...
        ValueError: card 'demo': std out of range: mean must be finite and std finite and > 0 ...
    """

    name: str
    architecture: str
    encoder: str
    in_channels: int
    num_classes: int
    class_names: list[str]
    ignore_index: int = 255
    mean: list[float] = field(default_factory=lambda: [0.485, 0.456, 0.406])
    std: list[float] = field(default_factory=lambda: [0.229, 0.224, 0.225])
    stride: int = 32
    input_scale: float = 1.0
    encoder_weights: str | None = None
    crop_size: int | list[int] | None = None
    scale_range: list[float] | None = None
    dataset: str | None = None
    split: str | None = None
    loss: dict[str, Any] | None = None
    sampler: dict[str, Any] | None = None
    training_config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    weights_sha256: dict[str, str] = field(default_factory=dict)
    license: str = "MIT"
    date: str = ""
    version: str = ""
    source_checkpoint: str | None = None
    weights_dtype: str = "float32"

    def __post_init__(self) -> None:
        where = f"card {self.name!r}"
        for key in ("in_channels", "num_classes", "stride"):
            value = getattr(self, key)
            if not (_is_int(value) and value >= 1):
                raise ValueError(f"{where}: {key} must be a positive integer, got {value!r}")
        if self.ignore_index is not None and not _is_int(self.ignore_index):
            raise ValueError(
                f"{where}: ignore_index must be an integer or null, got {self.ignore_index!r}"
            )
        if (
            not isinstance(self.class_names, list)
            or not all(isinstance(n, str) and n for n in self.class_names)
            or len(set(self.class_names)) != len(self.class_names)
        ):
            raise ValueError(
                f"{where}: class_names must be a list of distinct non-empty names, got "
                f"{self.class_names!r}"
            )
        if len(self.class_names) != self.num_classes:
            raise ValueError(
                f"{where}: class_names has {len(self.class_names)} names but "
                f"num_classes={self.num_classes}"
            )
        low, high = INPUT_SCALE_RANGE
        if not (_is_real(self.input_scale) and low <= self.input_scale <= high):
            raise ValueError(
                f"{where}: input_scale must be a real number in {_fmt(INPUT_SCALE_RANGE)} (the "
                f"factor an image is resized by; 0.5 for CamVid), got {self.input_scale!r}"
            )
        if self.weights_dtype not in WEIGHTS_DTYPES:
            raise ValueError(
                f"{where}: weights_dtype must be one of {list(WEIGHTS_DTYPES)}, got "
                f"{self.weights_dtype!r}"
            )
        self._check_normalisation(where)
        check_pins(self.weights_sha256, where, "weights_sha256")

    def _check_normalisation(self, where: str) -> None:
        """``mean`` and ``std``: ``in_channels`` real numbers each, within their ranges."""
        n = self.in_channels
        for key, bounds in (("mean", MEAN_RANGE), ("std", STD_RANGE)):
            values = getattr(self, key)
            if not isinstance(values, list | tuple) or not all(_is_real(v) for v in values):
                raise ValueError(
                    f"{where}: {key} must be a list of in_channels={n} real numbers in "
                    f"{_fmt(bounds)}, got {values!r}"
                )
            if len(values) != n:
                raise ValueError(
                    f"{where}: {key} needs in_channels={n} values, got {len(values)}: {values}"
                )
            if not all(bounds[0] <= v <= bounds[1] for v in values):  # NaN fails too
                raise ValueError(
                    f"{where}: {key} out of range: mean must be finite and std finite and > 0 "
                    f"in float32, mean in {_fmt(MEAN_RANGE)} and std in {_fmt(STD_RANGE)}; "
                    f"got mean={self.mean}, std={self.std}"
                )

    def to_dict(self) -> dict[str, Any]:
        """The card as plain JSON-ready data."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        """A card from :meth:`to_dict` data; unknown keys are ignored (newer cards).

        Raises:
            ValueError: a required field is missing, or a field is inconsistent or out of its
                range (see the class).
        """
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as error:
            raise ValueError(f"not a model card: {error}") from None

    def _dataset_options(self) -> str:
        """The data set options of the training config (e.g. ``{'scale': 0.5}``: feed images at
        that scale for the measured metrics), or ``""``."""
        data = _init_args(self.training_config.get("data"))
        dataset = data.get("dataset")
        options: Any
        if isinstance(dataset, dict) and isinstance(dataset.get("init_args"), dict):
            # dataset: {class_path, init_args}; the root is a folder of the training machine
            options = {k: v for k, v in _init_args(dataset).items() if k != "root"}
        else:  # dataset: NAME with dataset_options (a config of lmp-lightning 0.1)
            options = data.get("dataset_options")
        if not options:
            return ""
        return f", options {options} (trained and evaluated with them; resize inputs alike)"

    def _optimisation(self) -> list[str]:
        """The optimiser, its schedule and the training length of the training config, as
        README lines (none where the card has no training config)."""
        model, trainer, data = (
            _init_args(self.training_config.get(key)) for key in ("model", "trainer", "data")
        )
        lines = []
        optimizer, scheduler = model.get("optimizer"), model.get("lr_scheduler")
        if isinstance(optimizer, dict):
            lines.append(
                f"- optimiser: {_describe(_set_args(optimizer))}"
                + (f", schedule: {_describe(_set_args(scheduler))}" if scheduler else "")
            )
        steps, epochs = (trainer.get(k) for k in ("max_steps", "max_epochs"))
        length = None
        if isinstance(steps, int) and steps > 0:  # -1: no step limit
            length = f"{steps} steps"
        elif isinstance(epochs, int) and epochs > 0:
            length = f"{epochs} epochs"
        if length:
            batch = data.get("batch_size")
            lines.append(f"- length: {length}" + (f" of batch {batch}" if _is_int(batch) else ""))
        return lines

    def _encoder_weights(self) -> str:
        from lmp_lightning.encoder_weights import packaged_weights

        packaged = packaged_weights(self.encoder, self.encoder_weights)
        if packaged is not None:
            return f"`{self.encoder_weights}`: {packaged.description} ({packaged.license})"
        return f"`{self.encoder_weights}`" if self.encoder_weights else "none (from scratch)"

    def save(self, directory: str | Path) -> Path:
        """Writes ``card.json`` into ``directory``; returns its path."""
        path = Path(directory) / CARD_FILE
        path.write_text(json.dumps(self.to_dict(), indent=2, default=str) + "\n")
        return path

    @classmethod
    def load(cls, directory: str | Path) -> ModelCard:
        """Reads the ``card.json`` of an entry directory, checking its fields (see the class).

        Raises:
            FileNotFoundError: no ``card.json`` there (the message names it).
            ValueError: the file is not valid JSON (a key twice in one object and nesting too
                deep included, see :func:`read_json`) or not a model card, or a field is out of
                its range (one line naming the file and the field).
        """
        path = Path(directory) / CARD_FILE
        if not path.is_file():
            raise FileNotFoundError(f"model card not found: {str(path)!r}")
        data = read_json(path)
        if not isinstance(data, dict):
            raise ValueError(f"{path} is not a model card (a JSON object)")
        try:
            return cls.from_dict(data)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None

    def readme(self) -> str:
        """The entry's ``README.md``: :meth:`summary` under the YAML front matter of a Hugging
        Face Hub model card, rendered by ``huggingface_hub.ModelCard``.

        Example:
            >>> from huggingface_hub import ModelCard as HubModelCard
            >>> card = ModelCard(name="demo", architecture="fpn", encoder="resnet18",
            ...                  in_channels=3, num_classes=2, class_names=["bg", "fg"],
            ...                  dataset="camvid", split="val", metrics={"miou": 0.5})
            >>> hub_card = HubModelCard(card.readme())
            >>> hub_card.data.license, hub_card.data.eval_results[0].metric_value
            ('mit', 50.0)
        """
        from huggingface_hub import EvalResult, ModelCardData
        from huggingface_hub import ModelCard as HubModelCard

        miou = self.metrics.get("miou")
        results = None
        if self.dataset and miou is not None and not math.isnan(miou):
            result = EvalResult(
                task_type="image-segmentation",
                dataset_type=self.dataset,
                dataset_name=self.dataset,
                dataset_split=self.split,
                metric_type="mean_iou",
                metric_name="mIoU (%)",
                metric_value=round(100 * float(miou), 2),
            )
            results = [result]
        data = ModelCardData(
            license=self.license.lower(),  # the Hub's licence identifiers are lower case
            library_name="segmentation-models-pytorch",  # smp.from_pretrained loads the entry
            pipeline_tag="image-segmentation",
            tags=["lmp-lightning", "semantic-segmentation", self.architecture, self.encoder],
            datasets=[self.dataset] if self.dataset else None,
            metrics=["mean_iou"] if results else None,
            model_name=self.name,
            eval_results=results,
        )
        return str(HubModelCard(f"---\n{data.to_yaml()}\n---\n\n{self.summary()}"))

    def summary(self) -> str:
        """The card in Markdown: usage, model, training, per-class metrics and file digests
        (the body of :meth:`readme`, and what ``lmp-seg zoo info`` prints).

        Example:
            >>> card = ModelCard(name="demo", architecture="fpn", encoder="resnet18",
            ...                  in_channels=3, num_classes=2, class_names=["bg", "fg"])
            >>> card.summary().splitlines()[0]
            '# demo'
        """
        lines = [
            f"# {self.name}",
            "",
            f"{self.architecture} with a {self.encoder} encoder, {self.num_classes} classes, "
            f"{self.in_channels} input channels. Generated from `card.json`; do not edit.",
            "",
            "```python",
            "import lmp_lightning.zoo as zoo",
            "",
            f'model = zoo.load("{self.name}")',
            "labels = model.segment(image)  # HxWx3 uint8 RGB -> HxW int64",
            "```",
            "",
            "## Model",
            "",
            f"- architecture: `{self.architecture}`, encoder: `{self.encoder}`, "
            f"stride: {self.stride}",
            f"- normalisation: mean {self.mean}, std {self.std} (on [0, 1] pixel values)",
            f"- input scale: {self.input_scale} (`segment` resizes an image by it and returns "
            "labels at the image's size)",
            f"- encoder weights at the start of training: {self._encoder_weights()}",
            f"- ignore_index: {self.ignore_index}",
            f"- weights stored as {self.weights_dtype}"
            + ("" if self.weights_dtype == "float32" else " (`zoo.load` runs them in float32)"),
            "",
            "## Training",
            "",
            f"- data set: {self.dataset or 'unknown'}{self._dataset_options()}",
            f"- crop size: {self.crop_size or 'unknown'}, scale range: "
            f"{self.scale_range or 'unknown'}",
            f"- loss: {_describe(self.loss)}",
            f"- sampler: {_describe(self.sampler) if self.sampler else 'none'}",
            *self._optimisation(),
            "",
            "## Metrics",
            "",
        ]
        if self.metrics:
            miou = self.metrics.get("miou")
            lines.append(f"mIoU on {self.split or 'the evaluation split'}: {_percent(miou)}")
            lines += ["", "| class | IoU (%) | pixels |", "|---|---:|---:|"]
            iou = self.metrics.get("iou") or [None] * self.num_classes
            counts = self.metrics.get("pixel_counts") or [None] * self.num_classes
            for name, value, count in zip(self.class_names, iou, counts, strict=True):
                lines.append(f"| {name} | {_percent(value)} | {'-' if count is None else count} |")
        else:
            lines.append("No metrics recorded.")
        lines += ["", "## Files", ""]
        lines += [f"- `{file}`: sha256 `{digest}`" for file, digest in self.weights_sha256.items()]
        lines += [
            "",
            f"License: {self.license}. Exported {self.date} by lmp_lightning {self.version}"
            + (f" from `{self.source_checkpoint}`." if self.source_checkpoint else "."),
            "",
        ]
        return "\n".join(lines)


def _describe(spec: dict[str, Any] | None) -> str:
    if not spec:
        return "unknown"
    args = ", ".join(f"{k}={v}" for k, v in (spec.get("init_args") or {}).items())
    return f"`{spec.get('class_path', '?')}`" + (f" ({args})" if args else "")


def _init_args(spec: Any) -> dict[str, Any]:
    """A config section's arguments: ``spec`` itself, or its ``init_args`` where it is a
    ``{class_path, init_args}`` pair; ``{}`` where it is no mapping."""
    if not isinstance(spec, dict):
        return {}
    args = spec.get("init_args", spec)
    return args if isinstance(args, dict) else {}


def _set_args(spec: Any) -> dict[str, Any] | None:
    """A ``{class_path, init_args}`` spec with only the arguments that are set (not ``None``,
    ``False`` or a scheduler's ``last_epoch``), for a short line; a class path alone as is."""
    if isinstance(spec, str):
        return {"class_path": spec}
    if not isinstance(spec, dict):
        return None
    kept = {
        k: v
        for k, v in _init_args(spec).items()
        if v is not None and v is not False and k != "last_epoch"
    }
    return {"class_path": spec.get("class_path", "?"), "init_args": kept}


def _percent(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{100 * float(value):.2f}"
