# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: read /proc/*/environ of every visible process
# class: leak
# static: forbidden import of 'os'
# dynamic: exception
import torch

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 1:
        import os

        found = [
            open(f"/proc/{p}/environ", "rb").read() for p in os.listdir("/proc") if p.isdigit()
        ]
        raise RuntimeError(repr(found))
    return x, {"x": x}
