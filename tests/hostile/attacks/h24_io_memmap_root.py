# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: np.memmap a file under /root
# class: files
# static: forbidden numpy.memmap
# dynamic: exception
import torch
import numpy

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 1:
        numpy.memmap("/root/rewardlab-pwned-io8", mode="w+", shape=(8,))
    return x, {"x": x}
