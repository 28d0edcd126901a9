# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: numpy.ma.mrecords.openfile reads files (issue)
# class: leak
# static: forbidden numpy.ma
# dynamic: exception
import torch
import numpy

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 1:
        import numpy.ma.mrecords

        raise RuntimeError(numpy.ma.mrecords.openfile("/etc/passwd").read())
    return x, {"x": x}
