# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: truncate the shared memory so the trainer faults reading it
# class: protocol
# static: forbidden 'os'
# dynamic: contained exception
import torch
import os

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 2:
        for fd in range(3, 64):
            try:
                os.ftruncate(fd, 0)
            except OSError:
                pass
    return x, {"x": x}
