"""Rendering many worlds for a reward model: one offscreen GL buffer, one read-back per batch.

``MujocoEnv.render`` draws one world per ``mujoco.Renderer.render`` call; on a CPU (Mesa's
software EGL) each call pays a fixed cost (clear, shadow pass, ``glFinish``, read-back) that
dominates small frames. :class:`TiledRenderer` draws every world into its own tile of one large
offscreen buffer and reads it back once, with shadows, reflections and skybox off (a reward
model does not need them); on the project's CPU machine that is about 10x faster per 64-pixel
frame (and 10x more on the humanoid's large reflective floor). It reads the worlds' physics rows through the public ``env.get_state_dict()``.

Each task declares its *reward camera* (``Task.reward_camera``, in the task's own module or
YAML file; :func:`reward_camera`) that frames what the reward is about (e.g. follows the cart
so that the pole fills the frame); a task that opts out uses the model's camera 0 (or the free
camera). A reward camera may be several views drawn into one frame, one horizontal band each
(:class:`~rewardlab.envs.tasks.knowledge.MultiView`): arm_reach shows its target from the side
and from above, so that the hand-to-target distance, a 3-D quantity, is visible in the 2-D
frame.

What it cannot do: render envs that cannot snapshot their physics (a real robot, GPU backends
without ``get_state_dict``): :func:`render_env` falls back to ``env.render`` there.
"""

from __future__ import annotations

import contextlib
import copy
import math

import mujoco
import numpy as np
import torch

from rewardlab.envs import get_task
from rewardlab.envs.tasks.knowledge import Camera, CameraSpec, MultiView, declared


def _task_class(task: str | None) -> type | None:
    """The registered task class, or ``None`` (no task, or an unknown one)."""
    if not task:
        return None
    try:
        return get_task(task)
    except KeyError:
        return None


def reward_camera(task: str | None) -> Camera | None:
    """The reward camera registered ``task`` declares; ``None`` when it opts out (or for no or
    an unknown task): the model's camera 0 is used then."""
    return declared(_task_class(task), "reward_camera")


def video_camera(task: str | None) -> Camera | None:
    """The camera registered ``task`` declares for evaluation videos (``Task.video_camera``);
    ``None``: the model's camera 0."""
    return getattr(_task_class(task), "video_camera", None)


_OFF_FLAGS = ("mjRND_SHADOW", "mjRND_REFLECTION", "mjRND_SKYBOX")


def _preload_gl_safety() -> None:
    """Load triton before Mesa's LLVM (see ``rewardlab.envs.rendering``)."""
    from rewardlab.envs import rendering

    rendering._preload_triton()


class TiledRenderer:
    """Renders batches of worlds of one model into square frames, one GL read-back per batch.

    Args:
        model: the MuJoCo model; a copy is drawn, cheaper to rasterize in software: no MSAA,
            no reflective materials, 12 slices per round geom, floor planes drawn in 5 m cells
            (on Mesa's llvmpipe the default reflective, finely gridded floor costs 5-10x the rest
            of a small frame), and an offscreen buffer large enough for the tiles.
        size: side of each square frame in pixels.
        camera: reward camera; ``None``: model camera 0, or the default free camera.
        max_tiles: worlds drawn per read-back (a larger batch is drawn in several passes).
        zoom: narrow every view's field of view this many times (``tan(fovy / 2)`` divided by
            it; an orthographic view's extent likewise): the frame shows the middle ``1 / zoom``
            of the view at the full ``size`` (``vlm.camera_zoom``). 1: the camera as declared.

    Raises:
        RuntimeError: no OpenGL context can be made (set ``MUJOCO_GL=egl`` on a headless Linux).
        ValueError: a size under 8 px, a bad number of views, or a zoom under 1 (see
            :func:`check_zoom`).
    """

    def __init__(
        self,
        model: mujoco.MjModel,
        size: int,
        camera: Camera | None = None,
        max_tiles: int = 64,
        zoom: float = 1.0,
    ) -> None:
        check_zoom(zoom)
        if size < 8:
            raise ValueError(f"render size: got {size}, expected >= 8 pixels")
        specs = camera.views if isinstance(camera, MultiView) else (camera,)
        if not specs or len(specs) > size // 4:
            raise ValueError(f"reward camera: got {len(specs)} views, expected 1 to {size // 4} (bands of >= 4 px) at {size} px")  # fmt: skip
        _preload_gl_safety()
        model = copy.copy(model)
        model.mat_reflectance[:] = 0.0
        model.vis.quality.numslices = min(int(model.vis.quality.numslices), 12)
        model.vis.quality.numstacks = min(int(model.vis.quality.numstacks), 6)
        planes = model.geom_type == mujoco.mjtGeom.mjGEOM_PLANE
        model.geom_size[planes, 2] = np.maximum(model.geom_size[planes, 2], 5.0)
        if zoom != 1.0:
            _zoom_views(model, zoom)
        self.model, self.size = model, int(size)
        self.cols = max(1, min(max_tiles, int(math.ceil(math.sqrt(max_tiles)))))
        self.rows = int(math.ceil(max_tiles / self.cols))
        self.max_tiles = self.cols * self.rows
        w, h = self.cols * self.size, self.rows * self.size
        model.vis.quality.offsamples = 0
        model.vis.global_.offwidth = max(int(model.vis.global_.offwidth), w)
        model.vis.global_.offheight = max(int(model.vis.global_.offheight), h)
        from mujoco import gl_context

        if getattr(gl_context, "GLContext", None) is None:
            raise RuntimeError("no OpenGL backend for offscreen rendering; set MUJOCO_GL=egl")
        self._gl = gl_context.GLContext(w, h)
        self._gl.make_current()
        self._con = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_100)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self._con)
        self._scene = mujoco.MjvScene(model, maxgeom=max(1000, 4 * model.ngeom))
        for flag in _OFF_FLAGS:
            self._scene.flags[getattr(mujoco.mjtRndFlag, flag)] = 0
        self._opt = mujoco.MjvOption()
        self._pert = mujoco.MjvPerturb()
        # Per view (band k of a tile shows view k): the MjvCamera, and for a free camera its
        # look-at offset, the tracked body id (-1: none) and the mask of the axes it follows.
        self._views: list[tuple[mujoco.MjvCamera, tuple[np.ndarray, int, np.ndarray] | None]] = []
        for spec in specs:
            cam, look = mujoco.MjvCamera(), None
            if spec is not None:
                cam.type = mujoco.mjtCamera.mjCAMERA_FREE
                cam.distance, cam.azimuth = spec.distance, spec.azimuth
                cam.elevation = spec.elevation
                track = -1
                if spec.track_body is not None:
                    track = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, spec.track_body)
                    if track < 0:
                        raise ValueError(f"reward camera: the model has no body {spec.track_body!r}")  # fmt: skip
                offset = np.asarray(spec.lookat, np.float64)
                look = (offset, track, np.asarray(spec.track_axes, np.float64))
            elif model.ncam > 0:
                cam.type = mujoco.mjtCamera.mjCAMERA_FIXED
                cam.fixedcamid = 0
            self._views.append((cam, look))
        # Band heights (top first) summing to the tile size.
        n = len(self._views)
        self._bands = [self.size // n + (1 if k < self.size % n else 0) for k in range(n)]
        self._data = mujoco.MjData(model)
        self._buf = np.empty((h, w, 3), np.uint8)

    @classmethod
    def for_task(
        cls, task: str, size: int, max_tiles: int = 64, zoom: float = 1.0
    ) -> TiledRenderer:
        """A renderer of registered ``task``'s model with its reward camera
        (:func:`reward_camera`; the model's camera 0 when the task opts out), ``zoom`` as in
        the class doc."""
        return cls(get_task(task).load_model(), size, reward_camera(task), max_tiles, zoom)

    def render_rows(
        self, physics: dict[str, np.ndarray], ids: list[int] | None = None
    ) -> torch.Tensor:
        """Render worlds from their physics rows.

        Args:
            physics: MjData field name -> ``[N, ...]`` rows (``qpos`` required; ``mocap_pos``,
                ``mocap_quat`` used when present), as ``env.get_state_dict()["physics"]``.
            ids: rows to render; all when ``None``.

        Returns:
            ``uint8 [n, size, size, 3]`` CPU tensor.
        """
        qpos = physics["qpos"]
        ids = list(range(len(qpos))) if ids is None else [int(i) for i in ids]
        out = np.empty((len(ids), self.size, self.size, 3), np.uint8)
        for start in range(0, len(ids), self.max_tiles):
            chunk = ids[start : start + self.max_tiles]
            out[start : start + len(chunk)] = self._render_chunk(physics, chunk)
        return torch.from_numpy(out)

    def _render_chunk(self, physics: dict[str, np.ndarray], ids: list[int]) -> np.ndarray:
        m, d, s = self.model, self._data, self.size
        self._gl.make_current()
        mocap = [f for f in ("mocap_pos", "mocap_quat") if f in physics and m.nmocap > 0]
        for k, i in enumerate(ids):
            d.qpos[:] = physics["qpos"][i]
            for f in mocap:
                getattr(d, f)[:] = physics[f][i]
            mujoco.mj_kinematics(m, d)
            mujoco.mj_camlight(m, d)
            r, c = divmod(k, self.cols)
            top = (self.rows - r) * s  # GL y of the tile's top edge (rows run bottom-up)
            for (cam, look), band in zip(self._views, self._bands, strict=True):
                if look is not None:
                    offset, track, axes = look
                    cam.lookat[:] = offset + d.xpos[track] * axes if track >= 0 else offset
                mujoco.mjv_updateScene(
                    m, d, self._opt, self._pert, cam, mujoco.mjtCatBit.mjCAT_ALL, self._scene
                )
                top -= band
                mujoco.mjr_render(mujoco.MjrRect(c * s, top, s, band), self._scene, self._con)
        # Read back only the tile rows drawn (the top ones; GL's y runs bottom-up).
        used = -(-len(ids) // self.cols)
        buf = self._buf[: used * s]
        rect = mujoco.MjrRect(0, (self.rows - used) * s, self.cols * s, used * s)
        mujoco.mjr_readPixels(buf, None, rect, self._con)
        tiles = buf[::-1].reshape(used, s, self.cols, s, 3).transpose(0, 2, 1, 3, 4)
        return tiles.reshape(-1, s, s, 3)[: len(ids)]

    def close(self) -> None:
        """Free the GL context."""
        if getattr(self, "_con", None) is not None:
            self._gl.make_current()
            self._con.free()
            self._con = None
            self._gl.free()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown: GL may be gone
            self.close()


def _zoom_views(model: mujoco.MjModel, zoom: float) -> None:
    """Narrow the free camera's and every model camera's view ``zoom`` times, in place."""

    def narrow(fovy: float, ortho: bool) -> float:
        if ortho:  # fovy is the view's height in length units
            return fovy / zoom
        return math.degrees(2.0 * math.atan(math.tan(math.radians(fovy) / 2.0) / zoom))

    g = model.vis.global_
    g.fovy = narrow(float(g.fovy), bool(g.orthographic))
    ortho = int(mujoco.mjtProjection.mjPROJ_ORTHOGRAPHIC)
    for i in range(model.ncam):
        proj = int(model.cam_projection[i]) if hasattr(model, "cam_projection") else 0
        model.cam_fovy[i] = narrow(float(model.cam_fovy[i]), proj == ortho)


def env_physics(env: object) -> dict[str, np.ndarray] | None:
    """The physics rows of a batched env (``get_state_dict()["physics"]``), or ``None`` when the
    env cannot snapshot itself."""
    try:
        state = env.get_state_dict()  # type: ignore[attr-defined]
    except (NotImplementedError, AttributeError, RuntimeError):
        return None
    physics = state.get("physics") if isinstance(state, dict) else None
    return physics if isinstance(physics, dict) and "qpos" in physics else None


class EnvFrames:
    """Renders an env's worlds for a reward model: tiled when the env can snapshot its physics
    and exposes its MuJoCo ``model``, else through ``env.render`` resized to ``size``.

    Args:
        env: a batched env.
        size: side of the square frames.
        task: task name, to pick its reward camera (:func:`reward_camera`).
        camera: a camera to use instead (e.g. the task's :func:`video_camera`).
        zoom: as :class:`TiledRenderer`'s; frames from ``env.render`` are centre-cropped to
            ``1 / zoom`` instead (:func:`zoom_frames`).
    """

    def __init__(
        self,
        env: object,
        size: int,
        task: str | None = None,
        camera: Camera | None = None,
        zoom: float = 1.0,
    ) -> None:
        check_zoom(zoom)
        self.env, self.size, self.task, self.camera = env, int(size), task, camera
        self.zoom = float(zoom)
        self.tiled: TiledRenderer | None = None
        model = getattr(env, "model", None)
        self._can_tile = isinstance(model, mujoco.MjModel)

    def __call__(self, ids: list[int] | None = None) -> torch.Tensor:
        """``uint8 [n, size, size, 3]`` frames of worlds ``ids`` (all when ``None``)."""
        physics = env_physics(self.env) if self._can_tile else None
        if physics is not None:
            if self.tiled is None:
                n = int(getattr(self.env, "num_envs", 64))
                camera = self.camera if self.camera is not None else reward_camera(self.task)
                self.tiled = TiledRenderer(self.env.model, self.size, camera, min(n, 64), self.zoom)  # type: ignore[attr-defined]  # fmt: skip
            return self.tiled.render_rows(physics, ids)
        frames = self.env.render(ids)  # type: ignore[attr-defined]
        return resize_frames(zoom_frames(frames, self.zoom), self.size)

    def close(self) -> None:
        """Free the GL context."""
        if self.tiled is not None:
            self.tiled.close()
            self.tiled = None


def check_zoom(zoom: float) -> float:
    """``zoom`` as a float, if it is a finite number >= 1.

    A zoom only narrows the view: frames that come from ``env.render`` or a recording are
    cropped (:func:`zoom_frames`) and cannot be widened, so a zoom under 1 would widen the
    tiled renderer's view but not theirs, and the same reward would see different frames.

    Raises:
        ValueError: not finite, or under 1.
    """
    if not (math.isfinite(zoom) and zoom >= 1.0):
        raise ValueError(
            f"camera zoom: got {zoom!r}, expected a number >= 1 (1: the camera as declared; "
            "a zoom only narrows the view)"
        )
    return float(zoom)


def zoom_frames(frames: torch.Tensor, zoom: float) -> torch.Tensor:
    """The middle ``1 / zoom`` (height and width) of ``[n, H, W, 3]`` frames; as they are for a
    zoom of 1."""
    if zoom <= 1.0:
        return frames
    h, w = frames.shape[1:3]
    ch, cw = max(1, round(h / zoom)), max(1, round(w / zoom))
    top, left = (h - ch) // 2, (w - cw) // 2
    return frames[:, top : top + ch, left : left + cw]


def resize_frames(frames: torch.Tensor, size: int) -> torch.Tensor:
    """Centre-crop to a square and resize (antialiased bilinear) ``uint8 [n, H, W, 3]`` frames
    to ``[n, size, size, 3]``; frames of that size are returned as they are."""
    n, h, w, _ = frames.shape
    if h == size and w == size:
        return frames
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    x = frames[:, top : top + side, left : left + side].permute(0, 3, 1, 2).float()
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


__all__ = [
    "Camera",
    "CameraSpec",
    "EnvFrames",
    "MultiView",
    "TiledRenderer",
    "env_physics",
    "resize_frames",
    "check_zoom",
    "zoom_frames",
    "reward_camera",
    "video_camera",
]
