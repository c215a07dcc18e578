"""Generator throughput: images per second on one core for clean, occluded and corrupted samples."""
from __future__ import annotations

import time

from novum.config import small_config
from novum.data.synthetic import SyntheticConfig, SyntheticDataset


def throughput(n: int = 120, image_size: tuple[int, int] = (128, 160), variants=((None, None), ("L2", None), (None, "blur")),
               seed: int = 0) -> list[dict]:
    """Render ``n`` samples (all classes in turn) per variant in this process; returns rows with images/s."""
    cfg = small_config(input_size=tuple(image_size))
    rows = []
    for occ, cor in variants:
        per = max(1, -(-n // cfg.num_classes))
        ds = SyntheticDataset(SyntheticConfig(per_class=per, split="val", seed=seed, occlusion=occ, corruption=cor), cfg)
        ds[0]  # warm caches (keypoint meshes)
        idx = [(k % cfg.num_classes) * per + k // cfg.num_classes for k in range(n)]
        t = time.perf_counter()
        for i in idx:
            ds[i]
        dt = time.perf_counter() - t
        rows.append({"variant": occ or cor or "clean", "images": n, "seconds": round(dt, 3),
                     "images_per_s": round(n / dt, 1), "ms_per_image": round(1000 * dt / n, 2)})
    return rows
