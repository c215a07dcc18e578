"""The edge install: no torch (``pip install -e ".[cpu]"``). novum-run classifies with an ONNX
model and the bundled clip; every command that needs a missing piece ends with one line naming
the extra. Torch (and the other pieces of the [torch] extra) are made unimportable in a fresh
interpreter, as if they were not installed."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fakes.runtime_assets import frames, small_native, small_onnx, write_video
from novum.bundled import DEMO_CLIP

TORCH_EXTRA = ["torch", "torchvision", "safetensors", "onnxscript"]

PRELUDE = textwrap.dedent("""
    import contextlib, importlib, io, json, sys

    class NotInstalled:
        def __init__(self, names):
            self.names = names

        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in self.names:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NotInstalled(json.loads(sys.argv[1])))

    def call(module, fn, argv):
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            rc = getattr(importlib.import_module(module), fn)(argv)
        return {"rc": rc, "err": err.getvalue().strip().splitlines()}
""")


def run_hidden(hidden: list[str], body: str, tmp_path: Path) -> dict:
    code = PRELUDE + textwrap.dedent(body)
    env = dict(os.environ, NOVUM_CACHE=str(tmp_path / "cache"))   # no cached export of the demo model
    r = subprocess.run([sys.executable, "-c", code, json.dumps(hidden)], capture_output=True, text=True,
                       timeout=300, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_novum_run_on_an_onnx_model_and_the_demo_clip_without_torch(tmp_path):
    assert DEMO_CLIP.is_file(), f"the bundled demo clip is missing: {DEMO_CLIP}"
    out = tmp_path / "out.jsonl"
    res = run_hidden(TORCH_EXTRA, f"""
        r = call("novum.runtime.cli", "main", ["--model", {str(small_onnx())!r}, "--source", "demo", "--jsonl",
                                               {str(out)!r}, "--max-frames", "5", "--no-show"])
        r["torch"] = "torch" in sys.modules
        print(json.dumps(r))
    """, tmp_path)
    assert res["rc"] == 0, res["err"]
    assert res["torch"] is False
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["frame"] for r in recs] == list(range(5)) and all(r["label"] for r in recs)


def test_commands_that_need_torch_name_the_extra(tmp_path):
    video = write_video(tmp_path / "v.avi", frames(3, 120, 160, seed=4))
    image = tmp_path / "img.png"
    import cv2

    cv2.imwrite(str(image), frames(1, 120, 160, seed=5)[0])
    calls = {
        "novum-export": ("novum.export.cli", "main", ["--output-dir", str(tmp_path / "x"), "--no-engine"]),
        "novum-run (demo model)": ("novum.runtime.cli", "main", ["--source", str(video), "--no-show"]),
        "novum-run (checkpoint)": ("novum.runtime.cli", "main", ["--model", str(small_native()), "--source",
                                                                 str(video), "--no-show"]),
        "novum-run --backend torch": ("novum.runtime.cli", "main", ["--model", str(small_native()), "--backend",
                                                                    "torch", "--source", str(video), "--no-show"]),
        "novum-run --pose-every": ("novum.runtime.cli", "main", ["--model", str(small_onnx()), "--pose-model",
                                                                 str(small_native()), "--pose-every", "2",
                                                                 "--source", str(video), "--no-show"]),
        "novum-bench": ("novum.runtime.cli", "bench_main", ["--model", str(small_native())]),
        "novum-train": ("novum.train", "main", ["--out", str(tmp_path / "run")]),
        "novum-eval": ("novum.eval", "main", ["--model", str(small_onnx()), "--per-class", "1", "--cache", ""]),
        "novum-pose": ("novum.pose.cli", "main", [str(image), "--model", str(small_native())]),
    }
    res = run_hidden(TORCH_EXTRA, f"""
        calls = {json.dumps(calls)}
        print(json.dumps({{name: call(*c) for name, c in calls.items()}}))
    """, tmp_path)
    for name, r in res.items():
        assert r["rc"] == 2 and len(r["err"]) == 1, (name, r)
        assert r["err"][0].startswith("error: ") and "pip install 'novum[torch]'" in r["err"][0], (name, r)
    assert "--model model.onnx" in res["novum-run (checkpoint)"]["err"][0]


@pytest.mark.parametrize("missing,extra", [("onnxruntime", "novum[cpu]")])
def test_a_missing_runtime_names_its_extra(tmp_path, missing, extra):
    res = run_hidden([missing], f"""
        print(json.dumps(call("novum.runtime.cli", "main", ["--model", {str(small_onnx())!r}, "--source", "demo",
                                                            "--no-show"])))
    """, tmp_path)
    assert res["rc"] == 2 and len(res["err"]) == 1 and extra in res["err"][0], res


def test_a_broken_in_tree_module_is_not_called_a_missing_extra():
    from novum.extras import missing_extra_message

    assert missing_extra_message(ModuleNotFoundError("No module named 'novum.runtime.overlay'",
                                                     name="novum.runtime.overlay")) is None
    assert "novum[torch]" in missing_extra_message(ModuleNotFoundError("x", name="torch.nn"))
