# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: torch.optim.Adam.step = no-op stops learning (issue)
# class: sabotage
# static: forbidden torch.optim
# dynamic: contained
import torch

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 2:
        import torch.optim

        torch.optim.Adam.step = lambda self, *a, **k: None
    return x, {"x": x}
