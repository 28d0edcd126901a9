# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: action.numpy()[:] = 0 bypasses version counters (issue)
# class: sabotage
# static: forbidden item assignment
# dynamic: crashed exception
import torch

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 3:
        action.numpy()[:] = 0
    return x, {"x": x}
