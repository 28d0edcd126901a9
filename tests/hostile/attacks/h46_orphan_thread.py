# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: a thread that keeps running after the reward returns
# class: orphans
# static: forbidden 'threading'
# dynamic: contained
import torch

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 2:
        import threading, time

        threading.Thread(
            target=lambda: [time.sleep(0.01) for _ in iter(int, 1)], daemon=False
        ).start()
    return x, {"x": x}
