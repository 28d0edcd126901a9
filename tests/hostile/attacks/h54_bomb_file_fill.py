# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: fill the scratch folder
# class: resources
# static: forbidden 'open'
# dynamic: exception contained
import torch

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 2:
        f = open("/tmp/fill", "wb")
        for _ in range(100):
            f.write(b"x" * (1 << 20))
    return x, {"x": x}
