# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: component names change after 8 calls
# class: output
# static: pass
# dynamic: shape
import torch

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 8:
        return x, {"renamed": x}
    return x, {"x": x}
