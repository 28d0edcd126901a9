# ruff: noqa
# Deliberately hostile reward code for the sandbox's corpus (tests/hostile/test_hostile_corpus.py).
# attack: TCP to the trainer's loopback port 47613
# class: network
# static: forbidden 'socket'
# dynamic: exception
import torch

CALLS = [0]


def compute_reward(state, action):
    CALLS[0] += 1
    x = state["cart_pos"] * 1.0
    if CALLS[0] == 1:
        import socket

        socket.create_connection(("127.0.0.1", 47613), timeout=1).sendall(b"pwned")
    return x, {"x": x}
