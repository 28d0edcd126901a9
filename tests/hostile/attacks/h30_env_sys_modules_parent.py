# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: look for API keys in the modules of its own process
# class: leak
# static: forbidden 'sys'
# dynamic: contained exception
import torch

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 1:
        import sys

        keys = [k for m in list(sys.modules.values()) for k in dir(m) if "KEY" in k]
        raise RuntimeError(
            str(keys)[:100] + str(__import__("os").environ.get("REWARDLAB_TEST_SECRET"))
        )
    return x, {"x": x}
