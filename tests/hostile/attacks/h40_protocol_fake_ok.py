# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: answer 'ok' with a forged component list before computing
# class: protocol
# static: forbidden 'os'
# dynamic: shape crashed exception
import torch
import os

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 3:
        import json, struct

        msg = json.dumps({"op": "ok", "k": 99, "names": ["a"] * 99}).encode()
        for fd in range(3, 64):
            try:
                os.write(fd, struct.pack(">I", len(msg)) + msg)
            except OSError:
                pass
    return x, {"x": x}
