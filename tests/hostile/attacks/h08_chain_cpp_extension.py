# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: torch.utils.cpp_extension.load_inline runs a compiler
# class: escape
# static: forbidden torch.utils
# dynamic: contained exception
import torch

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 1:
        import torch.utils.cpp_extension

        torch.utils.cpp_extension.load_inline("pwned", cpp_sources="int x;", functions=[])
    return x, {"x": x}
