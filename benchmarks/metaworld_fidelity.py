"""Our MetaWorld tasks against MetaWorld's own envs: the same observations for the same actions.

MetaWorld 3.1.1 needs mujoco 3.3.0, so its envs run in a separate Python (a throwaway venv with
``pip install metaworld==3.1.1``) given by ``--reference-python``; this script runs a small probe
there (MetaWorld's MT1 env: reset, then 50 uniform random actions, recording the observations and
the object's drawn position), then replays the same object position and actions in our task on
MuJoCo 4 and prints the largest observation difference per task, at reset and over the steps.
It also runs each env's MetaWorld scripted policy (metaworld.policies) in the reference for the
success rate MetaWorld's own env gives. Nothing of MetaWorld is imported in this process.

    python3.11 -m venv /tmp/mwref && /tmp/mwref/bin/pip install metaworld==3.1.1 packaging
    .venv/bin/python benchmarks/metaworld_fidelity.py --reference-python /tmp/mwref/bin/python
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap

import torch

from rewardlab.envs import make_env
from rewardlab.envs.tasks import get_task
from rewardlab.envs.tasks.base import replace_config

TASKS = {
    "button-press-v3": "metaworld_button_press",
    "drawer-open-v3": "metaworld_drawer_open",
    "window-open-v3": "metaworld_window_open",
}

PROBE = textwrap.dedent(
    """
    import json, sys, warnings
    warnings.filterwarnings("ignore")
    import gymnasium as gym, numpy as np, metaworld, mujoco
    from metaworld import policies
    names, steps, episodes = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    pols = {"button-press-v3": policies.SawyerButtonPressV3Policy,
            "drawer-open-v3": policies.SawyerDrawerOpenV3Policy,
            "window-open-v3": policies.SawyerWindowOpenV3Policy}
    out = {"mujoco": mujoco.__version__}
    for name in names:
        env = gym.make("Meta-World/MT1", env_name=name, seed=0)
        obs, _ = env.reset()
        u = env.unwrapped
        obj_init = list(map(float, u.obj_init_pos))
        acts = np.random.default_rng(0).uniform(-1, 1, (steps, 4))
        seq = [obs.tolist()] + [env.step(a)[0].tolist() for a in acts]
        pol, wins = pols[name](), 0
        for _ in range(episodes):
            obs, _ = env.reset()
            ok = False
            for _ in range(500):
                obs, r, term, trunc, info = env.step(pol.get_action(obs))
                ok |= bool(info["success"])
            wins += ok
        out[name] = {"obj_init": obj_init, "acts": acts.tolist(),
                     "obs": seq, "scripted_success": wins / episodes}
    print(json.dumps(out))
    """
)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reference-python", required=True, help="a Python with metaworld 3.1.1")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--episodes", type=int, default=10, help="scripted-policy episodes")
    args = p.parse_args(argv)
    done = subprocess.run(
        [
            args.reference_python,
            "-c",
            PROBE,
            json.dumps(list(TASKS)),
            str(args.steps),
            str(args.episodes),
        ],  # fmt: skip
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        print(f"reference probe failed: {done.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return 1
    ref = json.loads(done.stdout)
    print(f"reference: MetaWorld's own envs on mujoco {ref['mujoco']}; ours on MuJoCo 4")
    print(
        "| task | reset obs max diff (m) | max diff over steps (m) | MetaWorld scripted success |"
    )
    print("|---|---|---|---|")
    for mw, ours in TASKS.items():
        r = ref[mw]
        cls = get_task(ours)
        box = tuple(r["obj_init"])
        cfg = replace_config(cls.default_config(), obj_low=box, obj_high=box)
        env = make_env(ours, num_envs=1, seed=0, nthread=1, cfg=cfg)
        obs = env.reset()
        reset_err = float((obs[0].double() - torch.tensor(r["obs"][0])).abs().max())
        step_err = 0.0
        for a, want in zip(r["acts"], r["obs"][1:], strict=True):
            obs = env.step(torch.tensor([a], dtype=torch.float32))[0]
            step_err = max(step_err, float((obs[0].double() - torch.tensor(want)).abs().max()))
        env.close()
        print(f"| {ours} ({mw}) | {reset_err:.5f} | {step_err:.5f} ({len(r['acts'])} random steps) | {r['scripted_success']:.2f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
