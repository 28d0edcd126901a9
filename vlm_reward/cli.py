"""Command-line commands of this part (added to ``rewardlab`` by ``rewardlab.cli``)."""

from __future__ import annotations

import argparse
from typing import Any


def add_commands(sub: Any, formatter_class: type[argparse.HelpFormatter]) -> None:
    """Add this part's subparsers to the ``rewardlab`` command line."""
    from rewardlab.vlm_reward.prefs_command import add_prefs_command

    add_prefs_command(sub, formatter_class)
