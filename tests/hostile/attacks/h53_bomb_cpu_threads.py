# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: spawn many threads spinning
# class: resources
# static: forbidden 'threading'
# dynamic: contained timeout exception memory
import torch

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 2:
        import threading

        for _ in range(2000):
            threading.Thread(target=lambda: None).start()
    return x, {"x": x}
