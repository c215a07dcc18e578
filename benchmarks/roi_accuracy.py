"""--roi accuracy on rendered scenes whose object sits off-centre in a larger frame.

Scenes: the synthetic generator's held-out test objects at the training scale (same focal and
distance), rendered into a frame ``--scale`` times the model input with the object's origin at a
random place (novum.data.framing.placed_scene), so the true box is known. Framings compared:

- whole frame: novum-run without --roi (the centred crop of the whole frame);
- tight box: the box alone stretched to the crop (object_fill 1.0: novum before this framing);
- --roi (training framing): the box framed with the model's recorded object fill and centre offset.

    python benchmarks/roi_accuracy.py [--model demo.safetensors] [--per-class 10] [--out benchmarks/results/roi_demo]
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
from report import write_report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="model (default: the bundled demo model, exported to ONNX once)")
    p.add_argument("--per-class", type=int, default=10)
    p.add_argument("--scales", default="1.5,2.0", help="frame size / model input size, comma-separated")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="write OUT.md and OUT.json")
    a = p.parse_args(argv)

    from novum.config import ModelConfig
    from novum.data.framing import placed_scene
    from novum.data.synthetic import SyntheticConfig, SyntheticDataset
    from novum.runtime.backends import load
    from novum.contracts.framing import Framer
    from novum.api import resolve_model as resolve
    from novum.runtime.pipeline import roi_framing

    path, _ = resolve(a.model)
    rows = []
    with load(path, intra_op_threads=1) as b:
        framing, note = roi_framing(b.metadata)
        cfg = ModelConfig.from_dict(b.metadata)
        H, W = b.input_size
        ds = SyntheticDataset(SyntheticConfig(per_class=a.per_class, split="test", seed=a.seed), cfg)
        for scale in (float(s) for s in a.scales.split(",")):
            fh, fw = int(round(H * scale / 8)) * 8, int(round(W * scale / 8)) * 8
            rng = np.random.default_rng(a.seed)
            inputs: dict[str, list[np.ndarray]] = {"whole frame": [], "tight box": [], "--roi (training framing)": []}
            labels = []
            for i in range(len(ds)):
                m = min(0.5, 0.38 / scale + 0.02)     # keep (most of) the object inside the frame
                centre = (fw * rng.uniform(m, 1 - m), fh * rng.uniform(m, 1 - m))
                img, box, label = placed_scene(ds, i, (fh, fw), centre)
                inputs["whole frame"].append(Framer((H, W))(img)[0])
                inputs["tight box"].append(Framer((H, W), box)(img)[0])
                inputs["--roi (training framing)"].append(Framer((H, W), box, framing)(img)[0])
                labels.append(label)
            for name, x in inputs.items():
                pred = np.concatenate([b.infer(np.stack(x[k:k + 8]))["scores"].argmax(1) for k in range(0, len(x), 8)])
                rows.append({"frame": f"{fw}x{fh} ({scale:g}x input)", "framing": name, "scenes": len(x),
                             "accuracy": float((pred == np.array(labels)).mean())})
    md = [f"# --roi on off-centre scenes (model {path.name})", "", note, "",
          "| frame | framing | scenes | top-1 |", "|---|---|---:|---:|"]
    md += [f"| {r['frame']} | {r['framing']} | {r['scenes']} | {100 * r['accuracy']:.1f}% |" for r in rows]
    text = "\n".join(md) + "\n"
    print(text, end="")
    if a.out:
        write_report(a.out, text, {"model": path.name, "framing": framing, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
