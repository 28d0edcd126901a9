"""ELU on CPU: torch's ``nn.ELU`` against RewardLab's ``ELU`` (``agents/networks.py``).

torch's CPU ELU kernels evaluate ``expm1`` one element at a time; RewardLab's ``ELU`` computes
``exp(x) - 1`` with the vectorized ``exp`` and takes the gradient from the saved output. Both
run in this command, interleaved (``--rounds`` rounds, shuffled order), on one intra-op thread:

* **activation**: forward (no autograd, as in a rollout) and forward + backward of one
  activation on the hidden layers PPO trains here (``[128, 128]`` at collection, ``[512, 128]``
  minibatches, ``[4096, 256]``);
* **PPO update**: one ``PPO.update`` (5 epochs x 4 minibatches) on a fixed ant_run rollout of
  ant_run's shipped config (128 worlds x 16 steps, 128-wide actor and critic), the same
  networks with ``nn.ELU`` and with ``ELU``.

Reported: median time per call and ``torch / ours`` (above 1: ours is faster).

Usage::

    python benchmarks/activation_speed.py           # ~1 min
    python benchmarks/activation_speed.py --quick   # smoke run, writes *_quick.*
"""

from __future__ import annotations

import argparse
import copy
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, contention_note, markdown_table, system_info, write_json  # noqa: E402

SHAPES = ((128, 128), (512, 128), (4096, 256))


def _median_s(fn: Callable[[], Any], calls: int) -> float:
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def activation_cases(shape: tuple[int, int]) -> dict[str, dict[str, Callable[[], Any]]]:
    """Forward and forward+backward closures for both activations on one shape."""
    from rewardlab.agents.networks import ELU

    x = torch.randn(shape)
    grad = torch.randn(shape)
    cases: dict[str, dict[str, Callable[[], Any]]] = {}
    for name, act in (("torch", nn.ELU()), ("ours", ELU())):
        xg = x.clone().requires_grad_()

        def forward(act: nn.Module = act) -> None:
            with torch.no_grad():
                act(x)

        def forward_backward(act: nn.Module = act, xg: torch.Tensor = xg) -> None:
            act(xg).backward(grad)

        cases[name] = {"forward": forward, "forward + backward": forward_backward}
    return cases


def ppo_update_cases() -> dict[str, Callable[[], Any]]:
    """One PPO update on the same ant_run rollout with each activation."""
    from rewardlab.agents.networks import ELU
    from rewardlab.agents.runner import OnPolicyRunner
    from rewardlab.config import load_train_config
    from rewardlab.envs import make_env

    cfg = load_train_config(["task=ant_run", "seed=0"])
    env = make_env("ant_run", num_envs=cfg.num_envs, cfg=cfg.task_config(), seed=0)
    runner = OnPolicyRunner(env, cfg.ppo, log_dir=None, seed=0)
    runner.learn(5 * cfg.num_envs * cfg.ppo.num_steps, progress=False)
    runner._collect(cfg.ppo.num_steps)  # a full rollout in storage, reused by every update
    alg, steps = runner.alg, runner.alg.storage.step
    start_state = copy.deepcopy(alg.policy.state_dict())
    start_lr = alg.learning_rate
    cases: dict[str, Callable[[], Any]] = {}
    for name, act in (("torch", nn.ELU), ("ours", ELU)):
        policy = copy.deepcopy(alg.policy)
        for net in (policy.actor, policy.critic):
            for i, layer in enumerate(net):
                if isinstance(layer, nn.ELU):
                    net[i] = act()

        def update(policy: nn.Module = policy) -> None:
            # every call starts from the same weights, rate and rollout (update() only rewinds
            # the storage's step counter; the stored data stays)
            policy.load_state_dict(start_state)
            original = alg.policy, alg.optimizer
            alg.policy, alg.optimizer = policy, torch.optim.Adam(policy.parameters(), start_lr)
            alg.learning_rate, alg.storage.step = start_lr, steps
            try:
                alg.update(progress=0.1)
            finally:
                alg.policy, alg.optimizer = original

        cases[name] = update
    return cases


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--calls", type=int, default=50, help="timed calls per case and round")
    p.add_argument("--quick", action="store_true", help="smoke run: 1 round, 3 calls")
    p.add_argument("--out", type=Path, default=None, help="output path without suffix")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.calls = 1, 3
    out = args.out or RESULTS / ("activation_speed_quick" if args.quick else "activation_speed")
    torch.set_num_threads(1)
    info = system_info()

    cases: dict[tuple[str, str], dict[str, Callable[[], Any]]] = {}
    for shape in SHAPES:
        per_act = activation_cases(shape)
        for kind in ("forward", "forward + backward"):
            cases[(f"ELU {list(shape)}", kind)] = {a: per_act[a][kind] for a in per_act}
    cases[("PPO update, ant_run (20 minibatch steps)", "update")] = ppo_update_cases()

    samples: dict[tuple[str, str, str], list[float]] = {}
    order = [(case, agent) for case in cases for agent in ("torch", "ours")]
    rng = random.Random(0)
    for _ in range(args.rounds):
        rng.shuffle(order)
        for case, act in order:
            fn = cases[case][act]
            fn()  # warm-up
            calls = max(1, args.calls // 10) if case[1] == "update" else args.calls
            samples.setdefault((*case, act), []).append(_median_s(fn, calls))

    rows, records = [], []
    for case in cases:
        t = statistics.median(samples[(*case, "torch")])
        o = statistics.median(samples[(*case, "ours")])
        rows.append([case[0], case[1], f"{t * 1e6:,.0f}", f"{o * 1e6:,.0f}", t / o])
        records.append({"case": case[0], "kind": case[1], "torch_s": t, "ours_s": o})
        print(f"{case[0]:45s} {case[1]:20s} torch {t * 1e6:9,.0f} us  ours {o * 1e6:9,.0f} us"
              f"  torch/ours {t / o:5.2f}", flush=True)  # fmt: skip

    head = ["case", "pass", "torch nn.ELU (us)", "RewardLab ELU (us)", "torch / ours"]
    text = [
        "# ELU on CPU: torch's nn.ELU vs RewardLab's ELU (written by "
        "`benchmarks/activation_speed.py`)",
        "",
        f"{info['date']}, {info['cpu_model']}, {info['cpu_count']} cores, git {info['git_rev']}, "
        f"torch {info['torch']} (1 intra-op thread). Median of {args.rounds} rounds (shuffled "
        f"order) of the median of {args.calls} calls ({max(1, args.calls // 10)} for the update).",
        "",
        contention_note(info),
        "",
        markdown_table(head, rows),
        "",
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text("\n".join(text))
    write_json(out.with_suffix(".json"), {"system": info, "results": records})
    print(f"wrote {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
