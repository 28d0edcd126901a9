# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: ptrace-attach the sandbox's host process
# class: privilege
# static: forbidden 'ctypes'
# dynamic: exception
import torch

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 1:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        for pid in (1, 2):
            if libc.ptrace(16, pid, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), f"ptrace {pid} refused")
    return x, {"x": x}
