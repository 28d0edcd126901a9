# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: become root again
# class: privilege
# static: forbidden 'os'
# dynamic: exception
import torch
import os

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 1:
        os.setuid(0)
    return x, {"x": x}
