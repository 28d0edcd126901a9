# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: multiprocessing.Process
# class: orphans
# static: forbidden 'multiprocessing'
# dynamic: exception
import torch

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 1:
        import multiprocessing

        multiprocessing.get_context("fork").Process(target=print).start()
    return x, {"x": x}
