# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: block forever after 10 calls
# class: resources
# static: forbidden 'time'
# dynamic: timeout
import torch

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 10:
        import time

        time.sleep(3600)
    return x, {"x": x}
