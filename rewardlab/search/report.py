"""The report of a reward search: a markdown page with a table of rounds and candidates, plots
of fitness over rounds and of the winner's reward components and success during training, the
winning code, the LLM's usage and links to every candidate's folder and video.

``write_report(run_dir)`` reads only the search directory (``search.json``, each candidate's
``result.json`` and the ``winner/`` folder), so it also works on a search that is still running
or that crashed: ``python -m rewardlab.search.report runs/search-...``.

What it cannot do: HTML with embedded videos (the markdown links the mp4 files), or plots of
candidates' curves other than the winner's and each round's best.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _candidates(root: Path) -> list[dict[str, Any]]:
    out = []
    for rdir in sorted(root.glob("round_*"), key=lambda p: int(p.name.split("_")[1])):
        for cdir in sorted(rdir.glob("r*c*"), key=lambda p: int(p.name.split("c")[-1])):
            res = _read(cdir / "result.json")
            if res is not None:
                out.append(res)
    return out


def _plot_fitness(cands: list[dict[str, Any]], path: Path) -> None:
    import matplotlib  # heavy, and its backend must be chosen before pyplot loads

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    rounds = sorted({c["round"] for c in cands})
    for c in cands:
        x = c["round"] + 0.04 * (c.get("index", 0) - 2)  # spread the candidates of a round
        if c.get("status") == "trained":
            ax.scatter(x, c["fitness"], color="tab:blue", alpha=0.6, s=20)
        else:
            ax.scatter(x, -0.05, color="tab:red", marker="x", s=20)
    best, best_so_far = [], []
    run = -1.0
    for r in rounds:
        fits = [c["fitness"] for c in cands if c["round"] == r and c.get("status") == "trained"]
        b = max(fits) if fits else float("nan")
        best.append(b)
        run = max(run, b) if fits else run
        best_so_far.append(run if run >= 0 else float("nan"))
    ax.plot(rounds, best, "o-", color="tab:blue", label="best of round")
    ax.plot(rounds, best_so_far, "--", color="tab:green", label="best so far")
    ax.set_xlabel("round")
    ax.set_ylabel("fitness (task success rate)")
    ax.set_ylim(-0.1, 1.05)
    ax.set_xticks(rounds)
    ax.set_title("candidates (x: failed before training)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_curves(curves: dict[str, list[list[float]]], title: str, path: Path) -> None:
    import matplotlib  # heavy, and its backend must be chosen before pyplot loads

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    comps = {k: v for k, v in curves.items() if k.startswith("reward/")}
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for k, pts in comps.items():
        axes[0].plot([p[0] for p in pts], [p[1] for p in pts], label=k.removeprefix("reward/"))
    axes[0].set_xlabel("env steps")
    axes[0].set_ylabel("episode sum")
    axes[0].set_title("reward components")
    if comps:
        axes[0].legend(fontsize=8)
    for k in ("charts/success_rate",):
        pts = curves.get(k, [])
        axes[1].plot([p[0] for p in pts], [p[1] for p in pts], label="success (training episodes)")
    axes[1].set_xlabel("env steps")
    axes[1].set_ylim(-0.05, 1.05)
    axes[1].set_title("task success during training")
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").replace("`", "'")


def write_report(run_dir: str | Path) -> Path:
    """Write ``<run_dir>/report.md`` and ``<run_dir>/plots/*.png``; returns the report's path."""
    root = Path(run_dir)
    state = _read(root / "search.json") or {}
    cfg = state.get("config", {})
    cands = _candidates(root)
    plots = root / "plots"
    lines = [f"# Reward search: {cfg.get('task', '?')}", ""]
    lines += [f"> {cfg.get('description', '').strip()}", ""]
    usage = state.get("llm_usage", {})
    llm = cfg.get("llm", {})
    lines += [
        f"- rounds x candidates: {cfg.get('rounds')} x {cfg.get('candidates')}; candidate budget "
        f"{cfg.get('candidate_steps')} env steps (halving: {cfg.get('halving')}); executor "
        f"{cfg.get('executor')}",
        f"- LLM: model `{llm.get('model')}` at `{llm.get('base_url')}`; {usage.get('requests', 0)} "
        f"requests, {usage.get('prompt_tokens', 0)} prompt + {usage.get('completion_tokens', 0)} "
        f"completion tokens, {usage.get('cache_hits', 0)} cache hits, est. cost "
        f"${usage.get('cost_usd', 0.0):.4f}",
        f"- fitness: success rate of the trained policy on the task's own `success()` over "
        f"{cfg.get('eval_episodes')} evaluation episodes",
        "",
    ]
    if cands:
        _plot_fitness(cands, plots / "fitness.png")
        lines += ["![fitness per round](plots/fitness.png)", ""]
    winner = state.get("winner")
    if winner:
        lines += ["## Winner", ""]
        seeds = winner.get("fitness_per_seed") or []
        lines += [
            f"`{winner['id']}`: candidate fitness {winner['candidate_fitness']:.2f}; retrained on "
            f"{len(seeds)} seed(s): {', '.join(f'{f:.2f}' for f in seeds) or '-'} (mean "
            f"{winner['fitness_mean']:.2f} +- {winner['fitness_std']:.2f}); policy export: "
            f"`{winner.get('export')}`",
            "",
        ]
        if (root / "winner" / "winner.mp4").is_file():
            lines += ["Video: [winner/winner.mp4](winner/winner.mp4)", ""]
        best = next((c for c in cands if c["id"] == winner["id"]), None)
        if best and best.get("curves"):
            _plot_curves(
                best["curves"],
                f"winner {best['id']} (candidate training)",
                plots / "winner_curves.png",
            )
            lines += ["![winner curves](plots/winner_curves.png)", ""]
        code = root / "winner" / "reward.py"
        if code.is_file():
            lines += ["```python", code.read_text(encoding="utf-8").rstrip(), "```", ""]
    elif state.get("finished"):
        reason = state.get("no_winner") or "no candidate reached nonzero fitness"
        lines += ["## No winner", "", f"{reason}: nothing was retrained or exported.", ""]
    lines += ["## Rounds", ""]
    for rnd in state.get("rounds", []):
        r = rnd["round"]
        lines += [f"### Round {r}", ""]
        video = root / f"round_{r}" / "best.mp4"
        if video.is_file():
            lines += [f"Best of round: `{rnd['best']}` ([video](round_{r}/best.mp4))", ""]
        lines += [
            "| candidate | style | status | fitness | steps | corr. w/ task reward | error |",
            "|---|---|---|---|---|---|---|",
        ]
        for c in (x for x in cands if x.get("round") == r):
            err = c.get("error") or {}
            msg = str(err.get("message", "")).strip().splitlines()
            err_txt = f"{err.get('kind', '')}: {msg[-1][:100] if msg else ''}" if err else ""
            corr = c.get("correlation")
            fit = c.get("fitness")
            steps = c.get("steps")
            stopped = " (halved)" if c.get("stopped_at") else ""
            lines.append(
                f"| [{c['id']}]({c['dir']}/) | {c.get('style') or ''} | {c.get('status')}{stopped} | "
                f"{'' if fit is None else f'{fit:.2f}'} | {'' if steps is None else steps} | "
                f"{'' if corr is None else f'{corr:.2f}'} | {_cell(err_txt)} |"
            )
        lines.append("")
    path = root / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


if __name__ == "__main__":
    print(write_report(sys.argv[1] if len(sys.argv) > 1 else "."))
