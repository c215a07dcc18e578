"""The accuracy gate: INT8 vs fp32 on held-out frames (never the calibration frames).

Both graphs run on ONNX Runtime CPU over the same frames. The gate is the top-1 agreement of the
class scores; with labels (synthetic test split) the accuracy of each is reported as well.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from novum.calibration.readers import FrameSet
from novum.errors import NovumError
from novum.runtime.backends.ort import run_onnx

DEFAULT_THRESHOLD = 0.99


class AccuracyGateError(NovumError):
    """INT8 agrees with fp32 less than the threshold on held-out frames."""


@dataclass
class GateReport:
    frames: int
    source: str
    threshold: float
    agreement: float                  # top-1 INT8 == top-1 fp32
    acc_fp32: float | None = None     # vs labels, when the frames have them
    acc_int8: float | None = None
    scores_max_abs: float = 0.0
    vertex_agreement: float = 0.0     # pixels with the same winning bank row

    @property
    def passed(self) -> bool:
        return self.agreement >= self.threshold

    def table(self, title: str = "INT8 accuracy gate") -> str:
        acc = lambda v: "-" if v is None else f"{100 * v:.1f}%"  # noqa: E731
        drop = "-" if self.acc_fp32 is None else f"{100 * (self.acc_fp32 - self.acc_int8):+.1f} pts"
        return "\n".join([
            f"{title} on {self.source}:",
            "| top-1 agreement int8 vs fp32 | threshold | accuracy fp32 | accuracy int8 | drop | max score err | same vertex |",
            "|---:|---:|---:|---:|---:|---:|---:|",
            f"| {100 * self.agreement:.1f}% | {100 * self.threshold:.1f}% | {acc(self.acc_fp32)} | {acc(self.acc_int8)} | "
            f"{drop} | {self.scores_max_abs:.2e} | {100 * self.vertex_agreement:.1f}% |",
        ])

    def as_metadata(self) -> dict:
        return {"frames": self.frames, "source": self.source, "threshold": self.threshold,
                "agreement": round(self.agreement, 6), "passed": self.passed,
                "acc_fp32": self.acc_fp32, "acc_int8": self.acc_int8}


def compare_models(fp32: str | Path, int8: str | Path, held: FrameSet, threshold: float = DEFAULT_THRESHOLD,
                   batch: int = 8) -> GateReport:
    """Run both graphs on ``held`` and compare their top-1 (and accuracy, with labels)."""
    if len(held) == 0:
        raise NovumError("no held-out frames for the INT8 accuracy gate; pass more data to --calib")
    a = run_onnx(fp32, held.frames, max_batch=batch)
    b = run_onnx(int8, held.frames, max_batch=batch)
    ta, tb = a["scores"].argmax(1), b["scores"].argmax(1)
    rep = GateReport(len(held), held.source, float(threshold), float((ta == tb).mean()),
                     scores_max_abs=float(np.abs(a["scores"] - b["scores"]).max()),
                     vertex_agreement=float((a["vertex"] == b["vertex"]).mean()) if "vertex" in a else 0.0)
    if held.labels is not None:
        rep.acc_fp32 = float((ta == held.labels).mean())
        rep.acc_int8 = float((tb == held.labels).mean())
    return rep
