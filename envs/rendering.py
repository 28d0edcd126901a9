"""Offscreen rendering set-up shared by every MuJoCo-based backend.

On Linux without a display, MuJoCo renders through EGL (``MUJOCO_GL=egl``, which importing
``rewardlab`` selects); on a machine with no
GPU that is Mesa's llvmpipe, which loads the system's LLVM. Torch's CUDA builds load triton, which
carries its own LLVM, lazily (the first optimizer builds it): loading triton after llvmpipe
crashes the process with a segmentation fault, loading it first does not. So before the first
renderer is made we load triton when it is installed. What this cannot fix: another library that
loads a conflicting LLVM before us.
"""

from __future__ import annotations

import contextlib
import importlib

import mujoco

_PRELOADED = False


def _preload_triton() -> None:
    global _PRELOADED
    if _PRELOADED:
        return
    _PRELOADED = True
    with contextlib.suppress(ImportError):
        importlib.import_module("triton._C.libtriton")


def make_renderer(model: mujoco.MjModel, height: int, width: int) -> mujoco.Renderer:
    """A ``mujoco.Renderer`` made safely for a process that also trains with torch."""
    _preload_triton()
    return mujoco.Renderer(model, height=height, width=width)
