"""Pose by render-and-compare: grid initialisation, then Adam on the camera (sections 5.5-5.6).

1. Initial pose: the best of 144 views (12 azimuths x 4 elevations x 3 thetas at the config's
   distance, upstream order) scored with the objective against the feature map.
2. Adam (lr 0.05, betas 0.4/0.6) on the camera position C (Cartesian, so distance is free too) and
   the in-plane theta; the result is the pose after the last step (no best-loss selection).

The init grid is pre-rendered lazily per class, and not as feature maps (upstream keeps
144 x D x h x w floats per class on the GPU, 7.1 GB for 12 classes at 80x100): the cache holds the
144 views' fragments (covered pixel, face vertex ids, barycentrics; 28 bytes per covered pixel),
and scoring goes through the vertex x pixel similarity (see :mod:`novum.pose.objective`). Bounded
by 144 x h x w x 28 bytes per class: 1.3 MB at 16x20, 32 MB at 80x100.
"""
from __future__ import annotations

import contextlib
import itertools
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from novum.config import ModelConfig
from novum.errors import InputError
from novum.pose.camera import camera_position_from_spherical_angles, camera_position_to_spherical_angle
from novum.pose.metric import pose_error
from novum.pose.objective import OBJECTIVES, Objective
from novum.pose.render import MeshRenderer

DEFAULT_ITERATIONS = 100


@dataclass
class PoseResult:
    """A refined pose in the upstream convention (radians; theta unwrapped) and how it was found."""

    label: int
    azimuth: float
    elevation: float
    theta: float
    distance: float
    loss: float                   # objective at the returned pose
    seconds: float                # wall time of the whole refinement (init + iterations)
    init: tuple[float, float, float, float] | None = None   # grid pose (azimuth, elevation, theta, distance)
    init_loss: float | None = None
    iterations: int = 0
    history: list[float] = field(default_factory=list, repr=False)   # loss before each step

    @property
    def pose(self) -> np.ndarray:
        return np.array([self.azimuth, self.elevation, self.theta, self.distance], dtype=np.float32)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("history")
        return d

    def describe(self, classes=None) -> str:
        name = classes[self.label] if classes is not None else str(self.label)
        return (f"{name}: azimuth {math.degrees(self.azimuth):.1f} deg, elevation {math.degrees(self.elevation):.1f} deg, "
                f"theta {math.degrees(self.theta):.1f} deg, distance {self.distance:.2f} "
                f"(loss {self.loss:.4f}, {1000 * self.seconds:.0f} ms)")


def init_grid(distance: float = 5.0) -> np.ndarray:
    """The 144 initial poses [144, 4] (azimuth, elevation, theta, distance); azimuth outermost."""
    azim = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    elev = np.linspace(-np.pi / 6, np.pi / 3, 4)
    theta = np.linspace(-np.pi / 6, np.pi / 6, 3)
    return np.array([(a, e, t, distance) for a, e, t in itertools.product(azim, elev, theta)], dtype=np.float64)


@dataclass
class _GridCache:
    view: Tensor   # int64 [K] view index into the grid
    pix: Tensor    # int32 [K]
    vidx: Tensor   # int32 [K, 3]
    bary: Tensor   # float32 [K, 3]

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.pix, self.vidx, self.bary)) + self.view.numel() * 4


class PoseRefiner:
    """Render-and-compare pose for the classes of one model.

    ``model_or_volumes``: a :class:`~novum.model.NovumModel` or its :class:`~novum.volumes.NeuralVolumes`
    (meshes, class features, clutter). ``objective``: 'nemo' or 'upstream' (see
    :mod:`novum.pose.objective`); ``clutter``: the clutter-aware loss, False / True or "mean" (NeMo:
    the mean clutter feature) / "max" (the best match over the clutter rows, as the head separates
    object from clutter). ``steps``: iterations after
    which the lr is multiplied by 0.2 (NeMo: 100, 200 of 300; NOVUM: none). ``threads``: torch
    CPU threads during a refinement (the per-step tensors are small: one thread is fastest and
    leaves the cores to the classifier; None keeps the process setting; note that torch's thread
    count is process-wide). ``restarts``: refine from this many distinct grid views (>= 45 degrees
    apart, best first) and keep the lowest final loss; 1 = upstream.
    """

    def __init__(self, model_or_volumes, config: ModelConfig | None = None, objective: str = "nemo",
                 clutter: bool = False, iterations: int = DEFAULT_ITERATIONS, lr: float = 0.05,
                 betas: tuple[float, float] = (0.4, 0.6), steps: tuple[int, ...] = (),
                 device: str | torch.device = "cpu", threads: int | None = 1, restarts: int = 1) -> None:
        volumes = getattr(model_or_volumes, "volumes", model_or_volumes)
        config = config or getattr(model_or_volumes, "config", None)
        if config is None:
            raise ValueError("PoseRefiner needs a ModelConfig when given bare volumes")
        if objective not in OBJECTIVES:
            raise InputError(f"unknown pose objective '{objective}'; use one of {', '.join(OBJECTIVES)}")
        if volumes.meshes is None:
            raise InputError("the model has no class meshes (an upstream checkpoint with custom vertex counts); "
                             "import it with mesh_dir=CAD_single to estimate pose")
        self.config = config
        self.volumes = volumes
        if clutter not in (None, False, True, "mean", "max"):
            raise InputError(f"unknown clutter mode {clutter!r}; use mean or max")
        self.objective = objective
        self.clutter = "mean" if clutter is True else (clutter or None)
        self.iterations, self.lr, self.betas, self.steps = int(iterations), float(lr), tuple(betas), tuple(steps)
        self.device = torch.device(device)
        self.threads = threads
        self.restarts = max(1, int(restarts))
        self.size = config.feature_size
        self.focal = config.focal / config.stride
        self.grid = init_grid(config.distance)
        self._renderers: dict[int, MeshRenderer] = {}
        self._grids: dict[int, _GridCache] = {}
        # torch.optim imports torch._dynamo on first use (~2 s, and not safe to race with other imports
        # on a worker thread): pay it here, on the constructing thread
        torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=self.lr).zero_grad()
        with torch.no_grad():
            clutter_rows = volumes.clutter.detach().float()
            self.mean_clutter = torch.nn.functional.normalize(clutter_rows.mean(0), dim=0).to(self.device)
            self.clutter_rows = clutter_rows.to(self.device)

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.config.classes)

    def renderer(self, label: int) -> MeshRenderer:
        if label not in self._renderers:
            v, f = self.volumes.meshes[label]
            self._renderers[label] = MeshRenderer(v, f, self.focal, self.size, self.device)
        return self._renderers[label]

    def class_features(self, label: int) -> Tensor:
        return self.volumes.class_features(label).detach().float().to(self.device)

    def grid_cache(self, label: int) -> _GridCache:
        """Fragments of the 144 init views of a class, rendered on first use and kept."""
        if label not in self._grids:
            r = self.renderer(label)
            g = torch.as_tensor(self.grid, dtype=torch.float32)
            with torch.no_grad(), self._cpu_threads():
                C = camera_position_from_spherical_angles(g[:, 3], g[:, 1], g[:, 0]).to(self.device)
                view, fr = r.fragments_views(C, g[:, 2].to(self.device))
            self._grids[label] = _GridCache(view, fr.pix.to(torch.int32), fr.vidx.to(torch.int32), fr.bary.float())
        return self._grids[label]

    def _cpu_threads(self):
        return _threads(self.threads if self.device.type == "cpu" else None)

    def cache_bytes(self) -> int:
        """Memory held by the pre-rendered init grids so far."""
        return sum(g.nbytes for g in self._grids.values())

    def _mask(self, box) -> Tensor:
        h, w = self.size
        m = torch.zeros(h, w, dtype=torch.bool, device=self.device)
        if box is None:
            m[:] = True
        else:
            y0, y1, x0, x1 = (int(v) // self.config.stride for v in list(box)[:4])
            m[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = True
            if not bool(m.any()):
                raise InputError(f"box {list(box)[:4]} covers no feature cell (needs at least {self.config.stride} px per side)")
        return m

    def _features(self, features) -> Tensor:
        F = torch.as_tensor(np.asarray(features) if not isinstance(features, Tensor) else features)
        F = F.detach().to(self.device, torch.float32)
        if F.dim() == 4 and F.shape[0] == 1:
            F = F[0]
        D = self.volumes.bank.shape[1]
        if F.dim() != 3 or F.shape[0] != D or tuple(F.shape[1:]) != tuple(self.size):
            raise InputError(f"features have shape {tuple(F.shape)}, expected ({D}, {self.size[0]}, {self.size[1]}) "
                             f"for this model; pass the model's 'features' output for one image")
        return F

    def objective_for(self, features, label: int, box=None) -> Objective:
        if not 0 <= int(label) < len(self.classes):
            raise InputError(f"class index {label} out of range (the model has {len(self.classes)} classes)")
        clutter = {None: None, "mean": self.mean_clutter, "max": self.clutter_rows}[self.clutter]
        return Objective(self.class_features(label), self._features(features), self._mask(box), self.objective,
                         clutter)

    def init_losses(self, obj: Objective, label: int) -> Tensor:
        g = self.grid_cache(label)
        with torch.no_grad():
            return obj.batch_loss(g.view, g.pix.long(), g.vidx.long(), g.bary, len(self.grid))

    def refine(self, features, label: int, box=None, iterations: int | None = None,
               init: tuple[float, float, float, float] | None = None) -> PoseResult:
        """Pose of class ``label`` in one feature map [D, h, w] (numpy or torch, the model's
        ``features`` output); ``box`` = [y0, y1, x0, x1] input pixels restricts the comparison
        as upstream's GT-box crop; ``init`` skips the grid search."""
        with self._cpu_threads():
            return self._refine(features, label, box, iterations, init)

    def _refine(self, features, label, box, iterations, init) -> PoseResult:
        t0 = time.perf_counter()
        label = int(label)
        obj = self.objective_for(features, label, box)
        n_it = self.iterations if iterations is None else int(iterations)
        if init is not None:
            starts = [(tuple(float(v) for v in init), None)]
        else:
            losses = self.init_losses(obj, label)
            starts = [(tuple(float(v) for v in self.grid[k]), float(losses[k])) for k in self._starts(losses)]
        best = None
        for start, start_loss in starts:
            C, theta, final, history = self._optimise(obj, self.renderer(label), start, n_it)
            if best is None or final < best[2]:
                best = (C, theta, final, history, start, start_loss)
        C, theta, final, history, start, start_loss = best
        d, e, a = camera_position_to_spherical_angle(C)
        return PoseResult(label=label, azimuth=float(a[0]), elevation=float(e[0]), theta=float(theta[0]),
                          distance=float(d[0]), loss=final, seconds=time.perf_counter() - t0, init=start,
                          init_loss=start_loss, iterations=n_it, history=history)

    def _starts(self, losses: Tensor) -> list[int]:
        """Grid indices to refine from: the best view (first minimum, as upstream's np.argmin) and,
        with ``restarts`` > 1, the next best views at least 45 degrees away from those taken."""
        order = torch.argsort(losses, stable=True).tolist()
        picked = [order[0]]
        for k in order[1:]:
            if len(picked) >= self.restarts:
                break
            if all(pose_error(self.grid[k], self.grid[j]) > math.radians(45) for j in picked):
                picked.append(k)
        return picked

    def _optimise(self, obj: Objective, r: MeshRenderer, init, n_it: int):
        """Adam on (C, theta) from ``init``; returns the final C, theta, loss and the loss history."""
        a0, e0, t0, d0 = init
        C = torch.nn.Parameter(camera_position_from_spherical_angles(d0, e0, a0).to(self.device))
        theta = torch.nn.Parameter(torch.tensor([t0], dtype=torch.float32, device=self.device))
        opt = torch.optim.Adam([C, theta], lr=self.lr, betas=self.betas)
        steps = set(self.steps)
        history = []
        for it in range(n_it):
            fr = r.fragments(C, theta)
            loss = obj.loss(fr.pix, fr.vidx, fr.bary)
            opt.zero_grad()
            loss.backward()
            opt.step()
            history.append(float(loss.detach()))
            if it + 1 in steps:
                for gr in opt.param_groups:
                    gr["lr"] *= 0.2
        with torch.no_grad():
            fr = r.fragments(C, theta)
            final = float(obj.loss(fr.pix, fr.vidx, fr.bary))
        return C.detach(), theta.detach(), final, history

    def render(self, pose, label: int) -> Tensor:
        """The class volume rendered at a pose (azimuth, elevation, theta, distance): [D, h, w]."""
        a, e, t, d = (float(v) for v in (pose.pose if isinstance(pose, PoseResult) else pose)[:4])
        with torch.no_grad(), self._cpu_threads():
            C = camera_position_from_spherical_angles(d, e, a).to(self.device)
            th = torch.tensor([t], dtype=torch.float32, device=self.device)
            return self.renderer(label).render(C, th, self.class_features(label))


@contextlib.contextmanager
def _threads(n: int | None):
    if n is None or n == torch.get_num_threads():
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def load_refiner(checkpoint_path: str | Path, device: str = "cpu", **kw) -> PoseRefiner:
    """A refiner for the volumes of a checkpoint (native .safetensors or upstream .pth)."""
    from novum.checkpoint import load_model

    model = load_model(checkpoint_path)
    return PoseRefiner(model.volumes, model.config, device=device, **kw)
