# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: an endless loop after 25 calls (issue: after 1000)
# class: resources
# static: pass
# dynamic: timeout
import torch

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 25:
        while True:
            x = x + 1.0
    return x, {"x": x}
