# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: np.save outside the scratch folder
# class: files
# static: forbidden numpy.save
# dynamic: exception
import torch
import numpy

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 1:
        numpy.save("/tmp/rewardlab-pwned-io1.npy", action.numpy())
    return x, {"x": x}
