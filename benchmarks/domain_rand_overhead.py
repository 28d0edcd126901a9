"""What domain randomization costs on the ``mujoco`` backend, against the same env without it.

Contenders, stepped side by side in one run (interleaved repeats, same random actions):

* ``off``: ``make_env(task, N)``, no ``domain_rand`` (the reference);
* ``mass`` / ``friction`` / ``gains``: per-world physics parameters (``Batch.expand`` rows, and
  ``Batch.set_const`` after mass draws), redrawn for every world that resets;
* ``obs_noise``: Gaussian observation noise; ``delay``: per-world action delay of 0..3 steps;
* ``all``: everything at once, as a DrEureka-style sim-to-real config would set it.

Ratios are env steps/s of each contender over ``off`` in the same run. Resets happen at the
task's own rate under random actions (cartpole falls within ~20-60 steps, so resets, and their
``set_const`` for mass draws, are frequent there).

Usage::

    python benchmarks/domain_rand_overhead.py                 # cartpole_balance, ant_run; 64, 1024
    python benchmarks/domain_rand_overhead.py --quick
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Rates, contention_note, markdown_table, run_for, system_info, write_json  # noqa: E402

from rewardlab.envs import make_env  # noqa: E402
from rewardlab.envs.randomization import DomainRandConfig  # noqa: E402

CONTENDERS: dict[str, DomainRandConfig | None] = {
    "off": None,
    "mass": DomainRandConfig(mass_scale=(0.8, 1.2)),
    "friction": DomainRandConfig(friction_scale=(0.5, 1.5)),
    "gains": DomainRandConfig(actuator_gain_scale=(0.8, 1.2)),
    "obs_noise": DomainRandConfig(obs_noise_std=0.01),
    "delay": DomainRandConfig(action_delay=(0, 3)),
    "all": DomainRandConfig(
        mass_scale=(0.8, 1.2),
        friction_scale=(0.5, 1.5),
        actuator_gain_scale=(0.8, 1.2),
        obs_noise_std=0.01,
        action_delay=(0, 3),
    ),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=["cartpole_balance", "ant_run"])
    p.add_argument("--worlds", nargs="+", type=int, default=[64, 1024])
    p.add_argument("--seconds", type=float, default=2.0, help="length of one timed window")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="smoke run: 64 worlds, short windows")
    args = p.parse_args()
    if args.quick:
        args.worlds, args.seconds, args.repeats = [64], 0.3, 2
    info = system_info()
    results = []
    for task in args.tasks:
        for n in args.worlds:
            envs = {
                name: make_env(task, num_envs=n, seed=0, **({"domain_rand": dr} if dr else {}))
                for name, dr in CONTENDERS.items()
            }
            gen = torch.Generator().manual_seed(0)
            a_dim = envs["off"].action_dim
            bank = [torch.rand(n, a_dim, generator=gen) * 2 - 1 for _ in range(16)]
            rates = {name: Rates() for name in envs}
            for env in envs.values():
                env.reset(seed=0)
                for a in bank:  # warm-up
                    env.step(a)
            for _ in range(args.repeats):
                for name, env in envs.items():
                    i = [0]

                    def step(env=env, i=i, bank=bank) -> None:
                        env.step(bank[i[0] % len(bank)])
                        i[0] += 1

                    calls, elapsed = run_for(step, args.seconds)
                    rates[name].samples.append(calls * n / elapsed)
            ref = rates["off"].median
            for name, r in rates.items():
                results.append(
                    {
                        "task": task,
                        "worlds": n,
                        "contender": name,
                        "steps_per_s": r.median,
                        "ratio_vs_off": r.median / ref,
                        "spread": r.spread,
                    }
                )
                print(
                    f"{task:18s} N={n:5d} {name:10s} {r.median:12,.0f} steps/s  x{r.median / ref:.2f}"
                )
            for env in envs.values():
                env.close()
    suffix = "_quick" if args.quick else ""
    out = Path(__file__).resolve().parent / "results"
    write_json(out / f"domain_rand_overhead{suffix}.json", {"system": info, "results": results})
    rows = [
        [r["task"], r["worlds"], r["contender"], r["steps_per_s"], r["ratio_vs_off"], r["spread"]]
        for r in results
    ]
    md = [
        "# Domain randomization overhead (mujoco backend)",
        "",
        f"Machine: {info['cpu_model']}, {info['cpu_count']} cores, torch {info['torch']}, "
        f"mujoco {info['mujoco']}, git {info['git_rev']}, {info['date']}.",
        f"Command: `python benchmarks/domain_rand_overhead.py {' '.join(sys.argv[1:])}`",
        "",
        contention_note(info),
        "",
        markdown_table(["task", "worlds", "contender", "env steps/s", "x off", "spread"], rows),
        "",
    ]
    (out / f"domain_rand_overhead{suffix}.md").write_text("\n".join(md))
    print(f"wrote {out / f'domain_rand_overhead{suffix}.md'}")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
