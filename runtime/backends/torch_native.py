"""torch backend: native ``.safetensors`` checkpoints (and upstream ``.pth``) on CPU or CUDA.

The only backend that imports torch; it is imported when this backend is loaded, never before.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from novum.errors import InputError
from novum.extras import require
from novum.runtime.backends.base import Backend, TensorSpec


class TorchBackend(Backend):
    """``device``: auto (CUDA if torch sees one) | cpu | cuda. ``features``: also return the feature map."""

    kind = "torch"

    def __init__(self, path: str | Path, device: str = "auto", features: bool = True, threads: int = 0,
                 **_: object) -> None:
        super().__init__(path)
        torch = require("torch", f"the torch backend ({self.path.name})")
        from novum.checkpoint import load_model

        if device not in ("auto", "cpu", "cuda"):
            raise InputError(f"unknown device '{device}' for torch; use auto, cpu or cuda")
        if device == "cuda" and not torch.cuda.is_available():
            raise InputError("--device cuda asked but torch sees no CUDA GPU; use --device cpu")
        self.device = "cuda" if device == "cuda" or (device == "auto" and torch.cuda.is_available()) else "cpu"
        if threads:
            torch.set_num_threads(int(threads))
        self._torch = torch
        self.model = load_model(self.path, device=self.device).eval()
        cfg = self.model.config
        self.metadata = json.loads(json.dumps(cfg.to_dict()))  # the same JSON form as ONNX metadata
        self._features = features
        h, w = cfg.input_size
        fh, fw = cfg.feature_size
        self.io = [TensorSpec("images", ("batch", h, w, 3), np.dtype(np.uint8), True),
                   TensorSpec("scores", ("batch", cfg.num_classes), np.dtype(np.float32), False),
                   TensorSpec("vertex", ("batch", fh, fw), np.dtype(np.int32), False),
                   TensorSpec("vertex_score", ("batch", fh, fw), np.dtype(np.float32), False)]
        if features:
            self.io.append(TensorSpec("features", ("batch", cfg.backbone.feature_dim, fh, fw), np.dtype(np.float32), False))

    def _infer(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        torch = self._torch
        with torch.inference_mode():
            x = torch.from_numpy(frames).to(self.device)
            out = self.model.predict_bgr(x)
        return {k: out[k].cpu().numpy() for k in self.output_names}
