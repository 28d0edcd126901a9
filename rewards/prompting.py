"""Prompt templates of the reward search, and extraction of reward code from LLM replies.

Templates are text files in ``rewards/prompts/`` with ``${name}`` placeholders
(:class:`string.Template`, so the ``{}`` of Python code in them needs no escaping). The
initial prompt carries the task's compact state schema (``env.describe()``, Text2Reward's
abstraction: names, shapes, units, frames -- never the env's source), the user's sentence, the
reward contract with an example, and optional deployment priors (DrEureka). Reflection prompts
carry per-component training statistics (Eureka's reward reflection), fitness, correlation with
the task's own reward, failure analysis and human feedback.

What it cannot do: count tokens, or trim a prompt to a context window (long feedback is only
shortened per component).
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any

PROMPT_DIR = Path(__file__).parent / "prompts"
"""Folder of the ``*.txt`` templates."""

ENTRY_POINT = "compute_reward"
"""Name of the function a reply must define."""

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.S)


def template(name: str, folder: str | Path | None = None) -> str:
    """The raw text of ``<folder>/<name>.txt`` (default folder: :data:`PROMPT_DIR`).

    Raises:
        FileNotFoundError: naming the file and the templates that exist.
    """
    d = Path(folder) if folder is not None else PROMPT_DIR
    path = d / f"{name}.txt"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in d.glob("*.txt")))
        raise FileNotFoundError(f"{path}: no such prompt template; known: {known}")
    return path.read_text(encoding="utf-8")


def render(name: str, folder: str | Path | None = None, **values: Any) -> str:
    """Fill template ``name`` with ``values``.

    Raises:
        KeyError: a placeholder of the template has no value (the message names it and the file).
    """
    text = template(name, folder)
    try:
        return Template(text).substitute({k: str(v) for k, v in values.items()})
    except KeyError as e:
        raise KeyError(f"prompt template {name}.txt needs a value for {e.args[0]!r}") from None


@dataclass(frozen=True)
class Extraction:
    """The reward code found in a reply, or why none was found."""

    code: str | None
    """The Python source of the block that defines ``compute_reward`` (``None``: none)."""
    problem: str | None
    """Why no usable code was found (feedback for the LLM), ``None`` when ``code`` is set."""


def extract_code(reply: str, entry_point: str = ENTRY_POINT) -> Extraction:
    """Find the reward code in an LLM reply.

    Looks at fenced blocks (```python, ```py or bare ```; an unclosed last fence counts), and
    picks the last one that defines ``entry_point`` (LLMs often show a draft, then the final
    version); if no block does, a reply that is itself Python defining it. Code that does not
    parse is still returned (the sandbox reports the syntax error with its line), but a reply
    whose blocks define no ``entry_point`` has no code. With the default ``entry_point``,
    Text2Reward's ``compute_dense_reward``/``compute_sparse_reward`` and DrEureka's
    ``_reward_<term>(self)`` methods count too (the search detects the style, see
    :func:`rewardlab.rewards.loader.prepare_source`).
    """
    blocks = [(lang.lower(), body) for lang, body in _FENCE.findall(reply)]
    names = [re.escape(entry_point)]
    if entry_point == ENTRY_POINT:
        names += ["compute_dense_reward", "compute_sparse_reward", r"_reward_\w+"]
    alternatives = "|".join(names)
    pattern = re.compile(rf"^\s*def\s+(?:{alternatives})\s*\(", re.M)
    candidates = [b for lang, b in blocks if lang in ("", "python", "py", "python3", "torch")]
    defining = [b for b in candidates if pattern.search(b)]
    if defining:
        return Extraction(defining[-1].strip("\n") + "\n", None)
    if not blocks and pattern.search(reply):
        try:
            ast.parse(reply)
            return Extraction(reply.strip("\n") + "\n", None)
        except SyntaxError:
            pass
    if not reply.strip():
        return Extraction(None, "the reply was empty")
    if blocks:
        return Extraction(
            None,
            f"the reply has {len(blocks)} code block(s) but none defines `{entry_point}(state, "
            "action)`",
        )
    return Extraction(None, f"the reply has no ```python code block defining `{entry_point}`")


# -------------------------------------------------------------------------------------------------
# Messages


def system_message(folder: str | Path | None = None) -> dict[str, str]:
    """The system prompt: role, reward contract, example, tips."""
    return {"role": "system", "content": render("system", folder)}


def initial_messages(
    task_name: str,
    description: str,
    state_schema: str,
    action_dim: int,
    control_dt: float,
    episode_steps: int,
    safety_priors: bool = False,
    folder: str | Path | None = None,
) -> list[dict[str, str]]:
    """System + first user message of a search (round 1)."""
    priors = render("safety_priors", folder) if safety_priors else ""
    user = render(
        "initial",
        folder,
        task_name=task_name,
        description=description.strip(),
        state_schema=state_schema.rstrip(),
        action_dim=action_dim,
        control_dt=f"{control_dt:g}",
        episode_steps=episode_steps,
        safety_priors=priors,
    )
    return [system_message(folder), {"role": "user", "content": user}]


def _fmt(x: float) -> str:
    if not math.isfinite(x):
        return str(x)
    return f"{x:.3g}" if abs(x) < 1e4 else f"{x:.3e}"


def series_line(name: str, values: Sequence[float], max_points: int = 10) -> str:
    """``name: [v1, v2, ...], Max: a, Mean: b, Min: c`` with at most ``max_points`` samples.

    ``values`` are numbers or ``[step, value]`` pairs (as the search's curves store them).
    """
    vals = [float(v[-1] if isinstance(v, list | tuple) else v) for v in values if v is not None]
    if not vals:
        return f"{name}: no values (no episode finished)"
    step = max(1, math.ceil(len(vals) / max_points))
    sampled = vals[::step]
    mean = sum(vals) / len(vals)
    return (
        f"{name}: [{', '.join(_fmt(v) for v in sampled)}], Max: {_fmt(max(vals))}, "
        f"Mean: {_fmt(mean)}, Min: {_fmt(min(vals))}"
    )


def candidate_feedback(result: Mapping[str, Any], folder: str | Path | None = None) -> str:
    """Feedback on one candidate: its statistics (trained) or its structured error (failed).

    ``result`` is a candidate's ``result.json`` (see :mod:`rewardlab.search.reward_search`).
    """
    label = f"`{result['id']}`"
    if result.get("status") != "trained":
        err = result.get("error") or {}
        return render(
            "error_feedback",
            folder,
            label=label,
            kind=err.get("kind", result.get("status", "failed")),
            message=str(err.get("message", "")).strip()[:2000],
        )
    curves: Mapping[str, Sequence[float]] = result.get("curves", {})
    comp = [
        series_line(k.removeprefix("reward/"), v)
        for k, v in curves.items()
        if k.startswith("reward/")
    ]
    metrics = []
    if "charts/success_rate" in curves:
        metrics.append(
            series_line("success_rate (training episodes)", curves["charts/success_rate"])
        )
    if "charts/episode_length" in curves:
        metrics.append(series_line("episode_length", curves["charts/episode_length"]))
    metrics.append(
        f"task_score (success rate of the trained policy over {result.get('eval_episodes', '?')} "
        f"evaluation episodes, the fitness): {_fmt(float(result.get('fitness', 0.0)))}"
    )
    corr = result.get("correlation")
    if corr is not None and math.isfinite(corr):
        metrics.append(
            f"correlation of this reward with the task's reference reward over training: {corr:.2f}"
        )
    stopped = result.get("stopped_at")
    if stopped:
        metrics.append(
            f"(stopped early by successive halving after {stopped} steps: other candidates "
            "were better at that point)"
        )
    analysis = result.get("failure_analysis")
    if analysis:
        metrics.append("How the failed evaluation episodes ended:\n" + analysis)
    return render(
        "candidate_result",
        folder,
        label=label,
        steps=result.get("steps", "?"),
        points=min(10, max((len(v) for v in curves.values()), default=0)),
        component_lines="\n".join(comp) or "(no reward components were logged)",
        metric_lines="\n".join(metrics),
    )


def reflection_message(
    results: Sequence[Mapping[str, Any]],
    failures: Sequence[Mapping[str, Any]] = (),
    human: str | None = None,
    folder: str | Path | None = None,
) -> dict[str, str]:
    """The user message of a reflection round.

    Args:
        results: the candidates to reflect on (best first), as ``result.json`` dicts.
        failures: other candidates of the round that failed, summarized in one line each.
        human: free-text feedback from a person, if any.
    """
    parts = [candidate_feedback(r, folder) for r in results]
    if failures:
        lines = [f"- `{f['id']}`: {_error_line(f)}" for f in failures]
        parts.append("Other candidates of this round failed:\n" + "\n".join(lines))
    if human:
        parts.append(render("human_feedback", folder, text=human.strip()))
    return {"role": "user", "content": render("reflection", folder, results="\n\n".join(parts))}


def error_message(
    result: Mapping[str, Any],
    others: Sequence[Mapping[str, Any]] = (),
    human: str | None = None,
    folder: str | Path | None = None,
) -> dict[str, str]:
    """The user message after a round in which no candidate trained: the error of the reply
    it answers, one line per other failed candidate, and human feedback."""
    parts = []
    if others:
        lines = [f"- `{f['id']}`: {_error_line(f)}" for f in others]
        parts.append("The other candidates of this round failed too:\n" + "\n".join(lines))
    if human:
        parts.append(render("human_feedback", folder, text=human.strip()))
    parts.append(candidate_feedback(result, folder))
    return {"role": "user", "content": "\n\n".join(parts)}


def _error_line(result: Mapping[str, Any]) -> str:
    err = result.get("error") or {}
    message = str(err.get("message", "")).strip()
    first = message.splitlines()[-1][:200] if message else ""
    return f"{err.get('kind', result.get('status', 'failed'))}: {first}".rstrip(": ")


def critic_messages(
    task_name: str,
    description: str,
    state_schema: str,
    action_dim: int,
    code: str,
    folder: str | Path | None = None,
) -> list[dict[str, str]]:
    """Messages asking the LLM to review one candidate before training (Auto MC-Reward's critic)."""
    user = render(
        "critic",
        folder,
        task_name=task_name,
        description=description.strip(),
        state_schema=state_schema.rstrip(),
        action_dim=action_dim,
        code=code.rstrip(),
    )
    return [{"role": "user", "content": user}]


def critic_verdict(reply: str) -> bool | None:
    """``True`` for ``VERDICT: ACCEPT``, ``False`` for ``REJECT``, ``None`` when absent."""
    found = re.findall(r"VERDICT:\s*(ACCEPT|REJECT)", reply, re.I)
    if not found:
        return None
    return found[-1].upper() == "ACCEPT"
