# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: '{0.__globals__}'.format(fn)
# class: leak
# static: forbidden format field
# dynamic: exception
import torch

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 1:
        raise RuntimeError("{0.__globals__[__builtins__]}".format(compute_reward))
    return x, {"x": x}
