# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: ndarray.tofile into /tmp
# class: files
# static: forbidden tofile
# dynamic: exception contained
import torch

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 1:
        action.numpy().tofile("/tmp/rewardlab-pwned-io7")
    return x, {"x": x}
