# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: setsid sleep in the background (survived the old group kill)
# class: orphans
# static: forbidden 'os'
# dynamic: contained exception
import torch
import os

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 1:
        os.system("setsid sleep 300 &")
    return x, {"x": x}
