"""Drawing on frames: label + confidence (vote share) + FPS, the crop box, part colours, wireframe."""
from __future__ import annotations

import cv2
import numpy as np

from novum.contracts.framing import Crop, Framer
from novum.runtime.results import Prediction

FONT = cv2.FONT_HERSHEY_SIMPLEX


def text_block(img: np.ndarray, lines: list[tuple[str, float, tuple[int, int, int]]], org: tuple[int, int]) -> None:
    """Lines of (text, relative size, colour) on a dark translucent box at ``org`` (top-left)."""
    base = max(0.35, img.shape[1] / 900)
    th = max(1, int(round(base * 1.6)))
    sizes = [cv2.getTextSize(t, FONT, base * s, th) for t, s, _ in lines]
    w = max(sz[0][0] for sz in sizes) + 12
    h = sum(sz[0][1] + sz[1] + 6 for sz in sizes) + 6
    x, y = org
    x1, y1 = min(img.shape[1], x + w), min(img.shape[0], y + h)
    roi = img[y:y1, x:x1]
    roi[:] = (roi * 0.4).astype(np.uint8)
    yy = y + 4
    for (t, s, col), ((tw, tht), bl) in zip(lines, sizes):
        yy += tht + 2
        cv2.putText(img, t, (x + 6, yy), FONT, base * s, col, th, cv2.LINE_AA)
        yy += bl + 4


def draw(frame: np.ndarray, pred: Prediction, crop: Crop, fps: float | None, latency_ms: float | None,
         model_view: np.ndarray | None = None, framer: Framer | None = None, show_box: bool = True,
         smoothed: Prediction | None = None, vote_box: list[float] | None = None) -> np.ndarray:
    """Annotate ``frame`` in place (and return it). ``model_view``: an input-sized image (part colours
    or a wireframe drawn on the model input) pasted back over the crop area. ``smoothed``: the
    temporally smoothed decision, shown as the headline with this frame's own label below it.
    ``vote_box``: the box around the cells voting for the label (frame pixels), drawn in its colour."""
    if model_view is not None and framer is not None:
        framer.paste(frame, model_view, crop)
    if show_box:
        x0, y0, x1, y1 = crop.rect()
        if (x0, y0, x1, y1) != (0, 0, frame.shape[1], frame.shape[0]):
            cv2.rectangle(frame, (x0, y0), (x1 - 1, y1 - 1), (200, 200, 200), 1, cv2.LINE_AA)
    head = smoothed if smoothed is not None else pred
    conf = head.confidence
    colour = (80, 220, 80) if conf >= 0.5 else (60, 200, 240) if conf >= 0.25 else (200, 200, 200)
    if vote_box is not None:   # the object as NOVUM sees it: around the cells voting for the label
        x0, y0, x1, y1 = (int(round(v)) for v in vote_box)
        cv2.rectangle(frame, (x0, y0), (x1 - 1, y1 - 1), colour, 2, cv2.LINE_AA)
    lines = [(f"{head.label}  {100 * conf:.0f}% of votes" + (" (smoothed)" if smoothed is not None else ""), 1.0, colour)]
    if smoothed is not None:
        lines.append((f"this frame: {pred.label}  {100 * pred.confidence:.0f}%", 0.7, (210, 210, 210)))
    for t in pred.topk[1:]:
        lines.append((f"{t['label']}  {100 * t['share']:.0f}%", 0.7, (210, 210, 210)))
    stats = []
    if fps is not None:
        stats.append(f"{fps:.1f} FPS")
    if latency_ms is not None:
        stats.append(f"model {latency_ms:.1f} ms")
    if stats:
        lines.append(("  ".join(stats), 0.7, (255, 255, 255)))
    text_block(frame, lines, (4, 4))
    return frame
