# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: deep recursion: a huge error text for the LLM (issue: 44,756 characters)
# class: resources
# static: pass
# dynamic: exception
import torch

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 5:

        def f(k):
            return f(k + 1) + 1

        f(0)
    return x, {"x": x}
