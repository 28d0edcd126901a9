# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: torch.jit.CompilationUnit compiles code
# class: escape
# static: forbidden torch.jit
# dynamic: contained exception
import torch

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 1:
        cu = torch.jit.CompilationUnit("def f(x):\n    return x")
    return x, {"x": x}
