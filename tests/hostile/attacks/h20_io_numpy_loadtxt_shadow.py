# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: np.loadtxt reads /etc/shadow
# class: leak
# static: forbidden numpy.loadtxt
# dynamic: exception
import torch
import numpy

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 1:
        raise RuntimeError(str(numpy.loadtxt("/etc/shadow", dtype=str)))
    return x, {"x": x}
