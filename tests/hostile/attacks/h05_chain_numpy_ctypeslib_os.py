# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: numpy.ctypeslib re-exports os
# class: escape
# static: forbidden numpy.ctypeslib
# dynamic: contained exception
import torch
import numpy

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 1:
        import numpy.ctypeslib

        numpy.ctypeslib.os.system("touch /tmp/rewardlab-pwned-chain5")
    return x, {"x": x}
