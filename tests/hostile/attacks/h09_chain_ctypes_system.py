# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: ctypes: libc system()
# class: escape
# static: forbidden 'ctypes'
# dynamic: contained exception
import torch

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 1:
        import ctypes

        ctypes.CDLL(None).system(b"touch /tmp/rewardlab-pwned-chain9")
    return x, {"x": x}
