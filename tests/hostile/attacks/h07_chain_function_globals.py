# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: the reward's own __globals__ to real builtins
# class: escape
# static: forbidden __
# dynamic: contained exception
import torch

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 1:
        b = compute_reward.__globals__["__builtins__"]
        imp = b["__import__"] if isinstance(b, dict) else b.__import__
        imp("os").system("touch /tmp/rewardlab-pwned-chain7")
    return x, {"x": x}
