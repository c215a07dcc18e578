"""What the INT8 benchmarks start from: a checkpoint (default: the bundled demo model), its fp32 ONNX
export and the folder the variants go to.

Imported by the scripts next to it (``python benchmarks/x.py`` puts this folder on ``sys.path``)."""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Exported:
    ckpt: Path      # the checkpoint the numbers are for
    work: Path      # where the ONNX files go
    model: Any      # the loaded NovumModel
    fp32: Path      # its fp32 ONNX export

    @property
    def config(self):
        return self.model.config


def export_fp32(model_arg: str | None, workdir: str | None, prefix: str) -> Exported:
    """Load ``model_arg`` (None: the bundled demo model) and export its fp32 ONNX into ``workdir``
    (None: a new temporary folder named ``prefix``...)."""
    from novum.bundled import demo_model_path
    from novum.checkpoint import load_model
    from novum.export.onnx import export_onnx

    ckpt = Path(model_arg) if model_arg else demo_model_path()
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix=prefix))
    work.mkdir(parents=True, exist_ok=True)
    model = load_model(ckpt)
    return Exported(ckpt, work, model, export_onnx(model, work / f"{ckpt.stem}.onnx"))
