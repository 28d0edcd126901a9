# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: unshare a user namespace to regain capabilities
# class: escape
# static: forbidden 'ctypes'
# dynamic: exception
import torch

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 1:
        import ctypes

        if ctypes.CDLL(None, use_errno=True).unshare(0x10000000) != 0:
            raise OSError(ctypes.get_errno(), "unshare refused")
    return x, {"x": x}
