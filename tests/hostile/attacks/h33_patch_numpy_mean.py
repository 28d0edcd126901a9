# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: replace numpy.mean
# class: sabotage
# static: forbidden assignment to the attribute
# dynamic: contained
import torch
import numpy

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 1:
        numpy.mean = lambda *a, **k: 0.0
    return x, {"x": x}
