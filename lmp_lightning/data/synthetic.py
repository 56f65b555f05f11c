"""An embedded, procedurally generated street-scene data set: no files, no download.

Every image is drawn on the fly from ``numpy.random.default_rng([seed, split_id, index])``, so a
sample is a pure function of ``(seed, split, index)``. The scenes mimic the layout and the class
imbalance of urban driving data (Cityscapes, CamVid): road, buildings and sky cover most pixels,
while poles, signs and persons are rare and thin, which is what loss max-pooling is about.
"""

from __future__ import annotations

import operator
from typing import ClassVar, get_args

import cv2
import numpy as np

from lmp_lightning.data.base import SPLITS, SegmentationDataset, Split

__all__ = ["CLASS_NAMES", "IGNORE_INDEX", "SyntheticStreetScenes", "render_street_scene"]

CLASS_NAMES: tuple[str, ...] = (
    "road",
    "sidewalk",
    "building",
    "pole",
    "sign",
    "vegetation",
    "terrain",
    "sky",
    "person",
    "car",
)
"""The classes of :class:`SyntheticStreetScenes`, in label order (a Cityscapes-like subset)."""

IGNORE_INDEX = 255
"""The label of unlabelled pixels (a one-pixel frame and the odd void object)."""

ROAD, SIDEWALK, BUILDING, POLE, SIGN, VEGETATION, TERRAIN, SKY, PERSON, CAR = range(10)

# Texture per label (index 255 is the void label): relative amplitude of the low-frequency
# shading and absolute amplitude (grey levels) of the high-frequency grain.
_SHADE = np.full(256, 0.10, np.float32)
_SHADE[: len(CLASS_NAMES)] = [0.08, 0.06, 0.10, 0.05, 0.03, 0.22, 0.15, 0.06, 0.05, 0.04]
_GRAIN = np.full(256, 10.0, np.float32)
_GRAIN[: len(CLASS_NAMES)] = [8, 6, 6, 4, 4, 28, 14, 2, 6, 5]

_BUILDING_RGB = np.array([[150, 140, 130], [170, 110, 90], [120, 120, 125], [190, 180, 160]])
_CAR_RGB = np.array(
    [[225, 225, 225], [30, 30, 35], [150, 150, 155], [180, 40, 40], [40, 60, 150], [40, 90, 60]]
)
_SIGN_RGB = np.array([[200, 40, 40], [40, 70, 190], [220, 190, 40], [225, 225, 225]])


def _rgb(rng: np.random.Generator, base: object, std: float = 15.0) -> np.ndarray:
    """A colour jittered around ``base`` (so that the colours of classes overlap)."""
    return np.clip(np.asarray(base, np.float32) + rng.normal(0.0, std, 3), 0, 255)


def _box(shape: tuple[int, ...], y0: float, y1: float, x0: float, x1: float) -> tuple[slice, slice]:
    """The rows and columns of the box ``[y0, y1) x [x0, x1)`` clipped to an image of ``shape``."""
    ya, yb = max(round(y0), 0), min(round(y1), shape[0])
    xa, xb = max(round(x0), 0), min(round(x1), shape[1])
    return slice(ya, max(ya, yb)), slice(xa, max(xa, xb))


def _blob(
    label: np.ndarray,
    colour: np.ndarray,
    centre: tuple[float, float],
    radii: tuple[float, float],
    cls: int,
    rgb: np.ndarray | tuple[int, int, int],
    power: float = 2.0,
    wobble: np.ndarray | None = None,
) -> None:
    """Paints ``|dy / ry| ** power + |dx / rx| ** power <= 1 (+ wobble)``: power 2 an ellipse,
    power 4 a rounded rectangle."""
    (cy, cx), (ry, rx) = centre, (max(radii[0], 0.5), max(radii[1], 0.5))
    sl = _box(label.shape, cy - ry - 1, cy + ry + 1, cx - rx - 1, cx + rx + 1)
    yy = np.arange(sl[0].start, sl[0].stop, dtype=np.float32)[:, None] + 0.5
    xx = np.arange(sl[1].start, sl[1].stop, dtype=np.float32)[None, :] + 0.5
    inside = np.abs((yy - cy) / ry) ** power + np.abs((xx - cx) / rx) ** power <= (
        1.0 if wobble is None else 1.0 + wobble[sl]
    )
    label[sl][inside] = cls
    colour[sl][inside] = rgb


def _rect(
    label: np.ndarray, colour: np.ndarray, box: tuple[slice, slice], cls: int, rgb: object
) -> None:
    """Paints the box ``box``."""
    label[box] = cls
    colour[box] = rgb


def render_street_scene(
    rng: np.random.Generator, height: int = 128, width: int = 160
) -> tuple[np.ndarray, np.ndarray]:
    """Draws one street scene and its labels.

    Sky over a horizon of buildings with windows, a road trapezoid with lane marks between
    tiled sidewalks and terrain, trees, and, from far to near, poles (1-3 px wide) with small
    signs, persons and cars scaled by perspective. Every class gets a jittered colour, texture,
    shading and Gaussian noise, and the image a random brightness and white balance.

    Args:
        rng: the only source of randomness.
        height: image height in pixels, at least 32.
        width: image width in pixels, at least 32.

    Returns:
        ``(image, mask)``: ``uint8`` RGB ``(height, width, 3)`` and ``int64`` ``(height, width)``
        with values in ``range(len(CLASS_NAMES))`` or :data:`IGNORE_INDEX`.

    Example:
        >>> image, mask = render_street_scene(np.random.default_rng(0), 32, 40)
        >>> image.shape, image.dtype, mask.shape, mask.dtype
        ((32, 40, 3), dtype('uint8'), (32, 40), dtype('int64'))
    """
    H, W = height, width
    yy = np.arange(H, dtype=np.float32)[:, None]
    xx = np.arange(W, dtype=np.float32)[None, :]
    cells = rng.standard_normal((H // 8 + 2, W // 8 + 2), dtype=np.float32)
    smooth = cv2.resize(cells, (W, H), interpolation=cv2.INTER_LINEAR)
    grain = rng.standard_normal((H, W), dtype=np.float32)
    label = np.full((H, W), SKY, np.uint8)
    colour = np.empty((H, W, 3), np.float32)

    # Sky: a vertical gradient, blue or overcast.
    horizon = int(H * rng.uniform(0.38, 0.5))
    overcast = rng.random() < 0.3
    top = _rgb(rng, (150, 150, 155) if overcast else (70, 130, 210), 20)
    low = _rgb(rng, (200, 200, 200) if overcast else (175, 200, 230), 15)
    t = np.clip(yy / horizon, 0, 1)[..., None]
    colour[:] = top * (1 - t) + low * t

    # Buildings along the horizon: random widths and heights, some gaps, a grid of windows.
    widths = rng.integers(max(4, W // 10), max(5, W // 3), size=W // 4 + 2)
    ends = np.cumsum(widths) - rng.integers(0, widths[0])
    n = len(widths)
    heights = rng.uniform(0.15, 0.95, n) * horizon * (rng.random(n) > 0.15)
    bid = np.searchsorted(ends, xx[0], side="right")
    col_top = (horizon - heights)[bid]
    xloc = xx[0] - (ends - widths)[bid]
    building = (yy >= col_top) & (yy < horizon)
    label[building] = BUILDING
    b_rgb = np.clip(_BUILDING_RGB[rng.integers(0, 4, n)] + rng.normal(0, 15, (n, 3)), 0, 255)
    colour[building] = np.broadcast_to(b_rgb[bid][None], (H, W, 3))[building]
    px, py = rng.integers(5, 11, n)[bid], rng.integers(6, 12, n)[bid]
    windows = (
        building
        & (rng.random(n) < 0.8)[bid]
        & (xloc % px >= 1)
        & (xloc % px < 1 + px // 2)
        & ((yy - col_top) % py >= 2)
        & ((yy - col_top) % py < 2 + py // 2)
        & (yy < horizon - 2)
    )
    colour[windows] *= np.asarray(rng.uniform([0.35, 0.4, 0.45], [0.6, 0.65, 0.8]), np.float32)

    # Ground: road trapezoid towards a vanishing point, sidewalks either side, terrain beyond.
    depth = np.clip((yy - horizon + 1) / (H - horizon), 0, 1)
    c0, dc, hw = W * rng.uniform(0.3, 0.7), W * rng.uniform(-0.25, 0.25), W * rng.uniform(0.3, 0.6)
    centre, half = c0 + depth * dc, depth * hw + 0.5
    d = xx - centre
    walk = np.where(d < 0, rng.uniform(1.25, 1.6), rng.uniform(1.25, 1.6)) * half
    ground = np.broadcast_to(yy >= horizon, (H, W))
    road = ground & (np.abs(d) < half)
    sidewalk = ground & ~road & (np.abs(d) < walk)
    terrain = ground & ~road & ~sidewalk
    for mask, cls, base in (
        (road, ROAD, (95, 95, 100)),
        (sidewalk, SIDEWALK, (150, 140, 135)),
        (terrain, TERRAIN, (110, 130, 70)),
    ):
        label[mask] = cls
        colour[mask] = _rgb(rng, base, 15)
    dashes = road & (np.abs(d) < np.maximum(0.6, 0.025 * half)) & (np.sqrt(depth) * 12 % 2 < 1)
    colour[dashes] = _rgb(rng, (215, 215, 205), 10)
    colour[sidewalk & (yy % 5 < 1)] *= 0.85

    # Trees: ragged crowns over the horizon on trunks.
    for _ in range(rng.integers(1, 5)):
        cx, cy = rng.uniform(0, W), horizon - rng.uniform(0.0, 0.25) * H
        ry, rx = rng.uniform(0.08, 0.2) * H, rng.uniform(0.06, 0.15) * W
        tw = max(1.0, 0.12 * rx)
        trunk = _box(label.shape, cy, horizon + rng.uniform(0, 0.08) * H, cx - tw / 2, cx + tw / 2)
        _rect(label, colour, trunk, VEGETATION, _rgb(rng, (90, 70, 50)))
        wobble = 0.25 * smooth + 0.15 * grain
        _blob(
            label, colour, (cy, cx), (ry, rx), VEGETATION, _rgb(rng, (60, 110, 50), 20), 2, wobble
        )

    # Objects on the ground, drawn from far to near: (foot row, kind, side of the road).
    things = [(rng.uniform(0.25, 1.0), "pole") for _ in range(rng.integers(1, 4))]
    things += [(rng.uniform(0.2, 1.0), "person") for _ in range(rng.integers(0, 4))]
    things += [(rng.uniform(0.15, 1.15), "car") for _ in range(rng.integers(1, 5))]
    things += [(rng.uniform(0.2, 1.0), "void") for _ in range(int(rng.random() < 0.4))]
    for v, kind in sorted(things):
        yb = horizon + v * (H - horizon)
        f = (yb - horizon + 1) / (H - horizon)  # depth, road centre and half width at yb
        c, h = c0 + f * dc, f * hw + 0.5
        side = rng.choice([-1.0, 1.0])
        if kind == "pole":
            x = c + side * h * rng.uniform(1.05, 1.25)
            length, pole_w = f * H * rng.uniform(0.5, 0.9), 1 + int(f > 0.45) + int(f > 0.8)
            x0 = round(x - pole_w / 2)
            _rect(
                label,
                colour,
                _box(label.shape, yb - length, yb, x0, x0 + pole_w),
                POLE,
                _rgb(rng, (110, 110, 115), 20),
            )
            if rng.random() < 0.75:
                s = max(1.5, f * H * rng.uniform(0.025, 0.045))
                rgb = _rgb(rng, _SIGN_RGB[rng.integers(0, 4)], 15)
                _blob(label, colour, (yb - length + s, x), (s, s), SIGN, rgb, rng.choice([2, 6]))
        elif kind == "person":
            x = c + side * h * rng.uniform(0.7 if rng.random() < 0.2 else 1.05, 1.3)
            ph = max(6.0, f * H * rng.uniform(0.2, 0.32))
            pw = 0.3 * ph
            legs = _rgb(rng, (50, 50, 70), 25)
            for lx in (x - pw / 2, x + 0.1 * pw):
                _rect(
                    label,
                    colour,
                    _box(label.shape, yb - 0.45 * ph, yb, lx, lx + 0.4 * pw),
                    PERSON,
                    legs,
                )
            torso = _box(label.shape, yb - 0.82 * ph, yb - 0.45 * ph, x - pw / 2, x + pw / 2)
            _rect(label, colour, torso, PERSON, rng.uniform(20, 230, 3))
            skin = _rgb(rng, (200, 160, 130) if rng.random() < 0.6 else (120, 80, 60), 10)
            _blob(label, colour, (yb - 0.9 * ph, x), (0.09 * ph, 0.08 * ph), PERSON, skin)
        elif kind == "car":
            x = c + rng.uniform(-0.7, 0.7) * h
            cw = max(6.0, f * W * rng.uniform(0.22, 0.32))
            ch = cw * rng.uniform(0.5, 0.7)
            shadow = _box(
                label.shape, yb - 0.1 * ch, yb + max(1.0, 0.05 * ch), x - cw / 2, x + cw / 2
            )
            colour[shadow] *= np.where(label[shadow] == ROAD, 0.6, 1.0)[..., None]
            paint = _rgb(rng, _CAR_RGB[rng.integers(0, len(_CAR_RGB))], 15)
            _blob(label, colour, (yb - 0.75 * ch, x), (0.2 * ch, 0.33 * cw), CAR, paint, 4)
            _blob(label, colour, (yb - 0.4 * ch, x), (0.25 * ch, 0.5 * cw), CAR, paint, 4)
            glass = _rgb(rng, (60, 70, 85), 10)
            _blob(label, colour, (yb - 0.75 * ch, x), (0.12 * ch, 0.27 * cw), CAR, glass, 4)
            for wx in (x - 0.3 * cw, x + 0.3 * cw):
                _blob(label, colour, (yb - 0.15 * ch, wx), (0.15 * ch, 0.1 * cw), CAR, (30, 30, 30))
        else:  # an unlabelled object: its pixels are void
            r = H * rng.uniform(0.03, 0.08)
            _blob(
                label,
                colour,
                (yb - r, c + side * h * 1.1),
                (r, r),
                IGNORE_INDEX,
                rng.uniform(0, 255, 3),
                2,
                0.3 * grain,
            )

    # Texture, light and sensor noise.
    colour *= (1 + _SHADE[label] * smooth)[..., None]
    colour += (_GRAIN[label] * grain)[..., None]
    gain = (
        rng.uniform(0.6, 1.3)
        * rng.uniform(0.9, 1.1, 3)
        * (1 + rng.uniform(-0.3, 0.3) * (xx / W - 0.5))[..., None]
    )
    colour *= gain.astype(np.float32)
    colour += rng.standard_normal((H, W, 3), dtype=np.float32) * np.float32(rng.uniform(3, 10))
    image = np.clip(colour, 0, 255).astype(np.uint8)
    label[[0, -1], :] = IGNORE_INDEX
    label[:, [0, -1]] = IGNORE_INDEX
    return image, label.astype(np.int64)


class SyntheticStreetScenes(SegmentationDataset):
    """Seeded street scenes generated on the fly, the embedded default data set.

    Sample ``index`` of ``split`` is drawn by :func:`render_street_scene` from
    ``numpy.random.default_rng([seed, split_id, index])``: deterministic, independent of the
    order of access and of worker processes, and different between splits and seeds. Over 200
    images of 128 x 160 the largest class (road) has about 100 times the pixels of the smallest
    (sign).

    Args:
        num_images: the length of the data set.
        height: image height in pixels, at least 32.
        width: image width in pixels, at least 32.
        split: ``"train"``, ``"val"`` or ``"test"``; each split has its own images.
        seed: a non-negative seed; each seed has its own images.

    Raises:
        TypeError: an argument of the wrong type.
        ValueError: an argument out of range.

    Example:
        >>> ds = SyntheticStreetScenes(num_images=4, height=32, width=48, split="val")
        >>> sample = ds[0]
        >>> sample["image"].shape, sample["mask"].shape, ds.num_classes, ds.ignore_index
        ((32, 48, 3), (32, 48), 10, 255)
        >>> bool((sample["mask"] == ds[0]["mask"]).all())
        True
    """

    class_names: ClassVar[tuple[str, ...]] = CLASS_NAMES
    ignore_index: ClassVar[int] = IGNORE_INDEX

    def __init__(
        self,
        num_images: int = 200,
        height: int = 128,
        width: int = 160,
        split: Split = "train",
        seed: int = 0,
    ) -> None:
        for name, value, low in (
            ("num_images", num_images, 1),
            ("height", height, 32),
            ("width", width, 32),
            ("seed", seed, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise TypeError(f"{name} must be an int, got {value!r}")
            if value < low:
                raise ValueError(f"{name} must be at least {low}, got {value!r}")
        if split not in SPLITS:
            raise ValueError(f"split must be one of {list(get_args(Split))}, got {split!r}")
        self.num_images, self.height, self.width = int(num_images), int(height), int(width)
        self.split: Split = split
        self.seed = int(seed)

    def __len__(self) -> int:
        return self.num_images

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        i = operator.index(index)
        if not -self.num_images <= i < self.num_images:
            raise IndexError(f"index {index} out of range for {self.num_images} images")
        rng = np.random.default_rng([self.seed, SPLITS.index(self.split), i % self.num_images])
        image, mask = render_street_scene(rng, self.height, self.width)
        return {"image": image, "mask": mask}

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(num_images={self.num_images}, height={self.height}, "
            f"width={self.width}, split={self.split!r}, seed={self.seed})"
        )
