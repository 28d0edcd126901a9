# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: torch.save into site-packages (a .pth would run at every start)
# class: files
# static: forbidden import of
# dynamic: exception
import torch

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 1:
        import site

        torch.save(state, site.getsitepackages()[0] + "/rewardlab-pwned.pth")
    return x, {"x": x}
