"""Robot models from registry packages: located on disk, a missing package is one line."""

from __future__ import annotations

import pytest

from rewardlab.envs.tasks import franka, g1, go1, shadow_hand
from rewardlab.envs.tasks.assets import ENVPOOL_LARGE, AssetPackage, MissingAssetsError

pytestmark = pytest.mark.unit


def test_a_missing_package_is_one_line_naming_the_install_command() -> None:
    pkg = AssetPackage("rewardlab_no_such_assets", "no-such-assets>=1.0,<2")
    with pytest.raises(MissingAssetsError) as info:
        pkg.file("a/scene.xml", needed_by="the Foo tasks")
    msg = str(info.value)
    assert "\n" not in msg and len(msg) < 300, msg
    assert "the Foo tasks" in msg and "no-such-assets" in msg and "is not installed" in msg
    assert "pip install 'no-such-assets>=1.0,<2'" in msg
    assert info.value.missing_dependency is True  # tests that walk every task skip it


def test_an_installed_package_without_the_file_says_so() -> None:
    pkg = AssetPackage(ENVPOOL_LARGE.module, ENVPOOL_LARGE.requirement, install="make install")
    with pytest.raises(MissingAssetsError, match=r"has no nowhere/x\.xml.*: make install$"):
        pkg.file("nowhere/x.xml", needed_by="the Foo tasks")


@pytest.mark.parametrize("module", [franka, go1, g1], ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_robot_layers_find_their_scene_and_license_in_the_package(module) -> None:
    try:
        root = module.asset_root()
    except MissingAssetsError as e:
        pytest.skip(str(e))
    assert (root / module.SCENE_XML).is_file()
    assert module.license_file().is_file()
    assert all(p.is_file() and root in p.parents for p in module.model_files())


def test_the_hand_scene_comes_from_gymnasium_robotics() -> None:
    try:
        path = shadow_hand.hand_scene_file()
    except MissingAssetsError as e:
        assert "pip install 'rewardlab[hand]'" in str(e)
        pytest.skip(str(e))
    assert path.is_file() and "gymnasium_robotics" in path.parts
