"""How training frames an object, measured, and scenes whose object sits elsewhere in a larger frame.

Training images (the synthetic generator, like upstream's crops) put the object's origin at the
image centre at a fixed distance and focal, so each object fills a typical fraction of the input.
``--roi`` (novum-run) must reproduce that framing from an object box, so the model records it
(``ModelConfig.framing``, a dict):

- ``object_fill``: median over the training images of ``max(box_h / H, box_w / W)``, how much of
  the input the object's box fills along its dominant side;
- ``centre_offset``: median (dx, dy) of the box centre from the image centre, as fractions of W, H;
- ``fill_quartiles``: the 25% and 75% quantiles of the fill (how much it varies with class and pose);
- ``aspect``: W / H of the input; ``pad``: ``"zero"`` (outside the frame is black, as upstream);
- ``samples`` and ``source``: what it was measured on.

:func:`framing_from_boxes` measures it on training boxes (novum-train records it);
:func:`generator_framing` renders the generator's own scenes when a model lacks it (novum-export
records it then). :func:`placed_scene` renders a generator scene into a larger frame with the object
at a chosen place and returns its true box: test data for ``--roi``. numpy + OpenCV, no torch.
"""
from __future__ import annotations

from typing import Any

import numpy as np

FRAMING_KEYS = ("object_fill", "centre_offset", "fill_quartiles", "aspect", "pad", "samples", "source")


def framing_from_boxes(boxes: np.ndarray, input_size: tuple[int, int], source: str) -> dict[str, Any]:
    """The framing record of boxes [N, 4] ``(y0, y1, x0, x1)`` (end exclusive) in ``input_size`` (H, W) images."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    H, W = (float(v) for v in input_size)
    if len(b) == 0:
        raise ValueError("no boxes to measure the framing on")
    bh, bw = b[:, 1] - b[:, 0], b[:, 3] - b[:, 2]
    fill = np.maximum(bh / H, bw / W)
    dx = ((b[:, 2] + b[:, 3]) / 2 - W / 2) / W
    dy = ((b[:, 0] + b[:, 1]) / 2 - H / 2) / H
    q1, q3 = np.quantile(fill, [0.25, 0.75])
    return {"object_fill": round(float(np.median(fill)), 4),
            "centre_offset": [round(float(np.median(dx)), 4), round(float(np.median(dy)), 4)],
            "fill_quartiles": [round(float(q1), 4), round(float(q3), 4)],
            "aspect": round(W / H, 6), "pad": "zero", "samples": int(len(b)), "source": source}


def generator_framing(config: Any, per_class: int = 6, seed: int = 0) -> dict[str, Any]:
    """The framing of the synthetic generator's clean scenes for ``config`` (a ModelConfig): what a
    model trained on it saw. ~10 ms per scene; the 12 PASCAL3D+ classes at 6 scenes each: ~1 s."""
    import dataclasses

    from novum.data.synthetic import GENERATOR_VERSION, SyntheticConfig, SyntheticDataset, mask_box

    H, W = config.input_size
    if H > 160:   # the fractions do not depend on the size: measure at ~160 px high, focal scaled alike
        h = 160
        w = max(8, int(round(W * h / H / 8)) * 8)
        config = dataclasses.replace(config, input_size=(h, w), focal=config.focal * h / H, framing=None)
    ds = SyntheticDataset(SyntheticConfig(per_class=per_class, split="val", seed=seed, supersample=1), config)
    boxes = []
    for label in range(len(ds.classes)):
        for j in range(per_class):
            sc = ds.scene(label, j)
            boxes.append(mask_box((sc.alpha > 0.5).astype(np.uint8), sc.annotation))
    return framing_from_boxes(np.stack(boxes), config.input_size,
                              f"synthetic generator v{GENERATOR_VERSION}, {len(boxes)} clean scenes")


def placed_scene(ds: Any, i: int, frame_size: tuple[int, int], centre: tuple[float, float]
                 ) -> tuple[np.ndarray, tuple[int, int, int, int], int]:
    """Sample ``i`` of a SyntheticDataset rendered into a ``frame_size`` (H, W) frame with the object's
    origin at ``centre`` (x, y) pixels, at the training scale (same focal and distance).

    Returns (uint8 BGR frame, the object's true box (x, y, w, h) in frame pixels, label)."""
    from novum.data.synthetic import mask_box

    label, j = ds.index(int(i))
    fh, fw = (int(v) for v in frame_size)
    cx, cy = int(round(centre[0])), int(round(centre[1]))
    if not (0 <= cx < fw and 0 <= cy < fh):
        raise ValueError(f"centre {centre} is outside the {fw}x{fh} frame")
    sc = ds.scene(label, j, size=(2 * fh, 2 * fw))        # canvas: the object at (fw, fh)
    y0, x0 = fh - cy, fw - cx
    img = np.round(np.clip(sc.image[y0:y0 + fh, x0:x0 + fw], 0, 255)).astype(np.uint8)
    mask = (sc.alpha[y0:y0 + fh, x0:x0 + fw] > 0.5).astype(np.uint8)
    if not mask.any():
        raise ValueError(f"the object of sample {i} lies outside the frame")
    by0, by1, bx0, bx1 = (int(v) for v in mask_box(mask))
    return np.ascontiguousarray(img), (bx0, by0, bx1 - bx0, by1 - by0), label
