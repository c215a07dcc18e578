from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
# A suite started in the background (nohup, `cmd &` in a script) inherits SIGINT ignored, so Python
# installs no KeyboardInterrupt handler and the Ctrl-C tests see nothing; give them the usual default.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def upstream_ckpt(tmp_path_factory) -> Path:
    """An upstream-layout .pth (random weights, the documented keys and memory layout)."""
    from factories import make_upstream_checkpoint

    path = tmp_path_factory.mktemp("upstream") / "classification_saved_model_199.pth"
    make_upstream_checkpoint(path)
    return path


@pytest.fixture(scope="session")
def upstream_model(upstream_ckpt):
    from novum.checkpoint import import_upstream

    return import_upstream(upstream_ckpt)


@pytest.fixture(scope="session")
def small_model():
    from factories import make_small_model

    return make_small_model()


def pytest_collection_modifyitems(config, items):
    """Tests marked gpu skip with a reason unless TensorRT, pycuda and a CUDA device are present."""
    reason = gpu_unavailable_reason()
    if reason:
        for it in items:
            if "gpu" in it.keywords:
                it.add_marker(pytest.mark.skip(reason=reason))


def gpu_unavailable_reason() -> str | None:
    """Why the real-GPU tests cannot run here (TensorRT, pycuda and a CUDA GPU, asked without torch)."""
    from novum.gpu import cuda_driver, import_pycuda, import_tensorrt

    trt, why = import_tensorrt()
    if trt is None:
        return f"needs TensorRT and a CUDA GPU: {why}"
    driver = cuda_driver()
    if not driver.gpus:
        return f"needs a CUDA GPU: {driver.error}"
    cuda, why = import_pycuda()
    return None if cuda is not None else f"needs pycuda: {why}"
