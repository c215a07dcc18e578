"""The Python-backend model novum-serve runs, against a stand-in of Triton's ``triton_python_backend_utils``:
requests batched and split back in order, per-request errors, chunking, requested outputs, broken models."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import pytest

from fakes.runtime_assets import frames, small_onnx
from novum.contracts.triton_repository import RepoOptions
from novum.runtime.backends import load
from novum.runtime.serve.server import ServeOptions, TritonServer


class FakeTensor:
    """A pb_utils.Tensor: built from a DLPack capsule (as the real stub), read back through DLPack."""

    def __init__(self, name: str, array: np.ndarray) -> None:
        self._name, self.array = name, array

    @staticmethod
    def from_dlpack(name: str, capsule) -> "FakeTensor":
        assert type(capsule).__name__ == "PyCapsule"   # the model hands over a capsule, not an array

        class Holder:
            def __dlpack__(self, **kw):
                return capsule

            def __dlpack_device__(self):
                return (1, 0)

        return FakeTensor(name, np.from_dlpack(Holder()).copy())

    def name(self) -> str:
        return self._name

    def __dlpack__(self, **kw):
        return self.array.__dlpack__(**kw)

    def __dlpack_device__(self):
        return self.array.__dlpack_device__()


class FakeRequest:
    def __init__(self, images: np.ndarray, wanted: list[str] | None = None) -> None:
        self.inputs = {"images": FakeTensor("images", images)}
        self.wanted = wanted or []

    def requested_output_names(self) -> list[str]:
        return self.wanted


class FakeResponse:
    def __init__(self, output_tensors, error=None) -> None:
        self.outputs = {t.name(): t.array for t in output_tensors}
        self.error = error


class FakeError:
    def __init__(self, msg: str) -> None:
        self.msg = msg

    def message(self) -> str:
        return self.msg


class FakeModelException(Exception):
    pass


def fake_pb_module() -> types.ModuleType:
    mod = types.ModuleType("triton_python_backend_utils")
    mod.Tensor = FakeTensor
    mod.InferenceResponse = FakeResponse
    mod.TritonError = FakeError
    mod.TritonModelException = FakeModelException
    mod.get_input_tensor_by_name = lambda r, name: r.inputs.get(name)
    return mod


@pytest.fixture
def pb(monkeypatch):
    mod = fake_pb_module()
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", mod)
    return mod


def make_model(tmp_path, model_path=None):
    """The model exactly as Triton starts it: from the repository novum-serve writes."""
    from novum.runtime.serve.python_model import TritonPythonModel

    server = TritonServer(model_path or small_onnx(), ServeOptions(threads=1))
    repo = server.write_repository(tmp_path / "repo")
    folder = repo / server.name
    config = _config_json(folder / "config.pbtxt")
    m = TritonPythonModel()
    m.initialize({"model_config": json.dumps(config), "model_instance_kind": "CPU", "model_instance_device_id": "0",
                  "model_repository": str(folder), "model_version": "1", "model_name": server.name})
    return m, server


def _config_json(path) -> dict:
    """config.pbtxt as the JSON Triton gives the Python backend (parameters as {key: {string_value}})."""
    params = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith('{ key: "'):
            key = line.split('"')[1]
            value = line.split("string_value: ", 1)[1].rsplit(" } }", 1)[0]
            params[key] = {"string_value": json.loads(value)}
    return {"parameters": params}


def test_requests_are_batched_and_split_back_in_order(pb, tmp_path):
    m, _ = make_model(tmp_path)
    x = frames(4, 128, 160, seed=3)
    reqs = [FakeRequest(x[0:1]), FakeRequest(x[1:3]), FakeRequest(x[3:4], wanted=["scores"])]
    calls = []
    infer = m.backend.infer
    m.backend.infer = lambda f: calls.append(len(f)) or infer(f)
    res = m.execute(reqs)
    assert calls == [4]                              # one backend call for the whole dynamic batch
    with load(small_onnx(), intra_op_threads=1) as ref_be:
        ref = ref_be.infer(x)
    assert [r.error for r in res] == [None] * 3
    assert sorted(res[0].outputs) == sorted(ref) and list(res[2].outputs) == ["scores"]
    for r, sl in zip(res, (slice(0, 1), slice(1, 3), slice(3, 4))):
        for k, v in r.outputs.items():
            np.testing.assert_allclose(v, ref[k][sl], atol=1e-5)
    m.finalize()


def test_a_bad_request_gets_its_own_error_and_the_others_are_served(pb, tmp_path):
    m, _ = make_model(tmp_path)
    x = frames(2, 128, 160, seed=4)
    res = m.execute([FakeRequest(x[:1]), FakeRequest(np.zeros((1, 64, 64, 3), np.uint8)), FakeRequest(x[1:])])
    assert res[0].error is None and res[2].error is None
    err = res[1].error.message()
    assert "expected uint8 BGR frames [B,128,160,3]" in err and "\n" not in err
    with load(small_onnx(), intra_op_threads=1) as ref_be:
        np.testing.assert_allclose(res[2].outputs["scores"], ref_be.infer(x[1:])["scores"], atol=1e-5)


def test_batches_above_the_backend_limit_run_in_chunks(pb, tmp_path):
    m, _ = make_model(tmp_path)
    m.backend.max_batch = 2            # as a TensorRT profile would limit it
    x = frames(5, 128, 160, seed=5)
    calls = []
    infer = m.backend.infer
    m.backend.infer = lambda f: calls.append(len(f)) or infer(f)
    res = m.execute([FakeRequest(x[i:i + 1]) for i in range(5)])
    assert calls == [2, 2, 1]
    with load(small_onnx(), intra_op_threads=1) as ref_be:
        ref = ref_be.infer(x)["vertex"]
    np.testing.assert_array_equal(np.concatenate([r.outputs["vertex"] for r in res]), ref)


def test_a_failing_backend_answers_every_request_with_the_reason(pb, tmp_path):
    m, _ = make_model(tmp_path)

    def boom(f):
        raise RuntimeError("device lost\nsecond line")

    m.backend.infer = boom
    res = m.execute([FakeRequest(frames(1, 128, 160)), FakeRequest(frames(1, 128, 160, seed=1))])
    assert [r.error.message() for r in res] == ["RuntimeError: device lost second line"] * 2


def test_a_broken_model_file_fails_initialize_in_one_line(pb, tmp_path):
    m, server = make_model(tmp_path)
    folder = tmp_path / "repo" / server.name
    (folder / "1" / "model.onnx").write_bytes(b"not an onnx file")
    from novum.runtime.serve.python_model import TritonPythonModel

    with pytest.raises(FakeModelException) as e:
        TritonPythonModel().initialize({"model_config": json.dumps(_config_json(folder / "config.pbtxt")),
                                        "model_instance_kind": "CPU", "model_repository": str(folder),
                                        "model_version": "1"})
    msg = str(e.value)
    assert msg.startswith("novum: ") and "cannot load the model" in msg and "\n" not in msg


def test_repository_options_reach_the_config(tmp_path):
    server = TritonServer(small_onnx(), ServeOptions(max_batch=3, instances=2, queue_delay_us=500, threads=1,
                                                     name="cam"))
    repo = server.write_repository(tmp_path / "r")
    text = (repo / "cam" / "config.pbtxt").read_text()
    assert 'backend: "python"' in text and "max_batch_size: 3" in text and "count: 2 kind: KIND_CPU" in text
    assert "max_queue_delay_microseconds: 500" in text
    assert (repo / "cam" / "1" / "model.onnx").read_bytes() == small_onnx().read_bytes()
    assert "from novum.runtime.serve.python_model import TritonPythonModel" in (repo / "cam" / "1" / "model.py").read_text()
    assert RepoOptions().kind == "auto"


def test_the_served_model_and_the_serving_modules_need_no_torch(tmp_path):
    """model.py's import chain, the server and the client with torch made unimportable."""
    onnx = small_onnx()
    code = textwrap.dedent(f"""
        import sys
        sys.modules["torch"] = None            # any 'import torch' now fails
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from pathlib import Path
        import numpy as np
        import novum.runtime.backends.triton, novum.runtime.serve.cli, novum.runtime.serve.server
        import test_triton_python_model as T
        sys.modules["triton_python_backend_utils"] = T.fake_pb_module()
        m, _ = T.make_model(Path({str(tmp_path)!r}), {str(onnx)!r})
        res = m.execute([T.FakeRequest(np.zeros((2, 128, 160, 3), np.uint8))])
        assert res[0].error is None and res[0].outputs["scores"].shape == (2, len(m.backend.classes)), res[0].error
        print("ok")
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]
