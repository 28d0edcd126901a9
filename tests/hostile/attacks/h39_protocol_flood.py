# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: write a giant length prefix and garbage to its own socket
# class: protocol
# static: forbidden 'os'
# dynamic: crashed exception
import torch
import os

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 3:
        import struct

        for fd in range(3, 64):
            try:
                os.write(fd, struct.pack(">I", 0xFFFFFFF0) + b"x" * 1000)
            except OSError:
                pass
    return x, {"x": x}
