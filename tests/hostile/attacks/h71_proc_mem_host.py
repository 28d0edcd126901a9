# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: write the host's memory through /proc/2/mem
# class: privilege
# static: forbidden 'open'
# dynamic: exception
import torch

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 1:
        open("/proc/2/mem", "r+b").write(b"x")
    return x, {"x": x}
