# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: double fork a daemon
# class: orphans
# static: forbidden 'os'
# dynamic: exception
import torch
import os

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 1:
        if os.fork() == 0:
            if os.fork() == 0:
                import time

                time.sleep(300)
            os._exit(0)
    return x, {"x": x}
