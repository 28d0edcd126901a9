"""Shared test set-up.

Importing ``rewardlab`` first selects ``MUJOCO_GL=egl`` on headless Linux before any test module
imports mujoco (MuJoCo fixes its OpenGL platform at import).
"""

import pytest

import rewardlab  # noqa: F401


# A registered task whose optional model package is missing (e.g. the MetaWorld tasks without
# `pip install --no-deps metaworld`) raises an error with `missing_dependency = True` and a
# one-line install message: every test that walks the registered tasks skips with that message.
def _skip_missing_dependency(e: BaseException) -> None:
    if getattr(e, "missing_dependency", False):
        pytest.skip(" ".join(str(e).split()))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item):  # noqa: ANN201
    try:
        return (yield)
    except Exception as e:
        _skip_missing_dependency(e)
        raise


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):  # noqa: ANN201
    try:
        return (yield)
    except Exception as e:
        _skip_missing_dependency(e)
        raise
