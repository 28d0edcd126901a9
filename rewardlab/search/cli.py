"""``rewardlab reward-search`` (added to the ``rewardlab`` command line by ``rewardlab.cli``).

::

    rewardlab reward-search --task ant_run --description "run forward fast, torso level" \\
        llm.base_url=http://localhost:8000/v1 llm.model=Qwen/Qwen2.5-Coder-32B-Instruct
    rewardlab reward-search --task cartpole_balance --description "..." run_dir=runs/s1   # resume
    rewardlab reward-search --task cartpole_balance --description "..." run_dir=runs/replay \\
        llm.cache_dir=runs/s1/llm_cache llm.offline=true                                 # replay

Nothing heavy is imported until a command runs (the search itself loads torch and MuJoCo).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rewardlab.core.config import parse_overrides, schema_lines
from rewardlab.rewards.llm import LLMError
from rewardlab.search.config import SearchConfig, load_search_config

EXIT_LLM = 3
"""Exit status when the LLM server could not be reached or refused the request."""
EXIT_NO_WINNER = 4
"""Exit status when no candidate reached nonzero fitness (or none trained): no winner, no export."""


def cmd_reward_search(args: argparse.Namespace) -> int:
    """Run (or resume) a reward search; prints progress lines and the winner at the end."""
    from rewardlab.search.reward_search import RewardSearch  # heavy: torch, MuJoCo, the trainer

    overrides = parse_overrides(args.overrides)
    if args.task:
        overrides["task"] = args.task
    if args.description:
        overrides["description"] = args.description
    cfg = load_search_config(overrides, config_file=args.config)
    search = RewardSearch(cfg)
    try:
        state = search.run()
    except LLMError as e:
        print(
            f"rewardlab reward-search: LLM error: {e}\n"
            f"everything so far is in {search.root}; run the same command with "
            f"run_dir={search.root} to resume",
            file=sys.stderr,
        )
        return EXIT_LLM
    winner = state.get("winner")
    print(f"[rewardlab] search directory: {search.root}")
    print(f"[rewardlab] report: {search.root / 'report.md'}")
    if winner is None:
        reason = state.get("no_winner") or "no candidate reached nonzero fitness"
        print(f"[rewardlab] no winner: {reason}; nothing was retrained or exported")
        return EXIT_NO_WINNER
    print(f"[rewardlab] winner {winner['id']}: reward {search.root / winner['reward']}")
    print(f"[rewardlab] policy export: {search.root / str(winner.get('export'))}")
    print(f"fitness: {winner['fitness_mean']:.2f} (std {winner['fitness_std']:.2f})")
    return 0


def add_commands(sub: Any, formatter_class: type[argparse.HelpFormatter]) -> None:
    """Add ``reward-search`` to the ``rewardlab`` command line."""
    p = sub.add_parser(
        "reward-search",
        help="let an LLM write reward code for a task, Eureka-style, and train the best",
        description=(
            "Search reward functions with an LLM (any OpenAI-compatible server): K candidates per\n"
            "round, each checked in a sandbox and trained briefly with PPO in a worker process,\n"
            "scored by the task's own success rate; the best ones' training statistics go back to\n"
            "the LLM for R rounds; the winner is retrained on several seeds and exported.\n"
            "Everything goes to run_dir (report.md at the end); the same run_dir resumes.\n"
            "Exit status 4: no candidate reached nonzero fitness (no winner, nothing exported).\n\n"
            "Config layers, later winning: sim_configs/search/default.yaml,\n"
            "sim_configs/search/<task>.yaml, --config FILE, key=value words.\n"
            "The API key is read from $OPENAI_API_KEY (llm.api_key_env names another variable).\n\n"
            'example: rewardlab reward-search --task ant_run --description "run forward fast"\n'
            "         llm.base_url=http://localhost:11434/v1 llm.model=qwen2.5-coder:32b"
        ),
        epilog="keys:\n" + "\n".join(f"  {line}" for line in schema_lines(SearchConfig)),
        formatter_class=formatter_class,
    )
    p.add_argument("--task", help="task name (same as task=NAME)")
    p.add_argument("--description", help="what the policy should do, in words")
    p.add_argument("--config", metavar="FILE", help="YAML file of settings (under key=value)")
    p.add_argument(
        "overrides", nargs="*", metavar="key=value", help="settings, e.g. rounds=2 llm.model=gpt-4o"
    )
    p.set_defaults(func=cmd_reward_search)
