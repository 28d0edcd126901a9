"""``rewardlab vlm-prefs`` and ``rewardlab vlm-progress``: arguments and parsers, importable
without torch.

The work is done by :func:`rewardlab.vlm_reward.preference.run_prefs` and
:func:`rewardlab.vlm_reward.progress.train_from_episode_set`, imported when a command runs (so
that building the ``rewardlab`` command line stays light).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class PrefsArgs:
    """Label frame pairs with a VLM judge (RL-VLM-F) and train a Bradley-Terry reward ensemble.

    Everything lands in ``out``: ``pool.pt`` (the frames), ``prefs.pt`` (pairs and labels, saved
    after every batch of queries), ``reward.pt`` (the ensemble), ``metrics.json``. Run the same
    command again to continue: frames are not re-recorded, labelled pairs are not asked again.
    """

    task: str = ""
    """Registered task whose frames are labelled; required."""
    out: str = ""
    """Output folder; required."""
    frames: str | None = None
    """A ``.pt`` file with ``uint8 [n, H, W, 3]`` frames to label (e.g. from a policy's rollouts);
    null: record ``pool_size`` frames of the task under random actions."""
    pool_size: int = 1000
    """Frames to record when ``frames`` is null."""
    record_every: int = 4
    """Control steps between recorded frames (every world is rendered each time)."""
    queries: int = 300
    """Pairs to ask the judge about in total (counting those already in ``out``)."""
    rounds: int = 1
    """Query rounds; round 1 draws pairs uniformly, later rounds by ensemble disagreement after
    retraining on what came before."""
    batch: int = 32
    """Pairs per batch of judge requests (the dataset is saved after each)."""
    members: int = 3
    """Reward models in the ensemble."""
    image_size: int = 64
    """Side of the frames the reward CNN sees."""
    epochs: int = 30
    """Training epochs per round."""
    seed: int = 0
    """Seed of recording, pair sampling and initialization."""
    vlm: dict[str, Any] = field(default_factory=dict)
    """``VLMConfig`` fields: ``judge_base_url``, ``judge_model``, ``goal_prompts`` (default: the
    task's), ``judge_concurrency``, ... (``vlm.judge_model=gpt-4o``)."""

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field and what was expected."""
        if not self.task:
            raise ValueError("task: required (task=NAME)")
        if not self.out:
            raise ValueError("out: required (out=DIR)")
        for name in ("pool_size", "record_every", "queries", "rounds", "batch", "members"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: got {getattr(self, name)!r}, expected >= 1")
        if not 8 <= self.image_size <= 512:
            raise ValueError(f"image_size: got {self.image_size!r}, expected 8..512")
        if self.epochs < 1:
            raise ValueError(f"epochs: got {self.epochs!r}, expected >= 1")


@dataclass(frozen=True)
class ProgressArgs:
    """Train a progress model (per-frame or pairwise) on the successful episodes of a recorded
    episode set, e.g. the ``episodes.npz`` that ``rewardlab vlm-eval`` writes, and save it for
    ``vlm.scorer=progress vlm.progress_checkpoint=OUT``."""

    episodes_file: str = ""
    """Recorded episodes (``.npz`` of ``rewardlab vlm-eval``); required."""
    out: str = ""
    """Model file to write (``.pt``); required."""
    model: str = "progress"
    """``progress`` (per-frame CNN, labels t/(T-1)) or ``pairwise`` (antisymmetric delta)."""
    image_size: int = 64
    """Side of the frames the model sees (and the training wrapper renders)."""
    epochs: int = 15
    """Training epochs."""
    seed: int = 0
    """Initialization and sampling seed."""

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field and what was expected."""
        if not self.episodes_file:
            raise ValueError("episodes_file: required (episodes_file=runs/.../episodes.npz)")
        if not self.out:
            raise ValueError("out: required (out=FILE.pt)")
        if self.model not in ("progress", "pairwise"):
            raise ValueError(f"model: got {self.model!r}, expected progress or pairwise")
        if not 8 <= self.image_size <= 512:
            raise ValueError(f"image_size: got {self.image_size!r}, expected 8..512")
        if self.epochs < 1:
            raise ValueError(f"epochs: got {self.epochs!r}, expected >= 1")


def _args(cls: type, words: list[str]) -> Any:
    from rewardlab.core.config import COMMAND_LINE, build, merge_layers, parse_overrides

    merged, sources = merge_layers(
        [(COMMAND_LINE, parse_overrides(words))], default_source=COMMAND_LINE
    )
    return build(cls, merged, "", sources)


def _cmd_prefs(args: Any) -> int:
    from rewardlab.vlm_reward.preference import run_prefs

    run_prefs(_args(PrefsArgs, args.overrides))
    return 0


def _cmd_progress(args: Any) -> int:
    from rewardlab.vlm_reward.progress import save_progress_model, train_from_episode_set

    a: ProgressArgs = _args(ProgressArgs, args.overrides)
    model = train_from_episode_set(a.episodes_file, a.model, a.image_size, a.epochs, a.seed)
    save_progress_model(model, a.out)
    print(
        f"[vlm-progress] wrote {a.out}; evaluate it on other episodes with: rewardlab vlm-eval "
        f"vlm.scorer=progress vlm.progress_checkpoint={a.out} seed=1; train with: rewardlab "
        f"train reward=vlm vlm.scorer=progress vlm.progress_checkpoint={a.out}"
    )
    return 0


def add_prefs_command(sub: Any, formatter_class: Any) -> None:
    """Add ``rewardlab vlm-prefs`` and ``rewardlab vlm-progress`` (called from
    ``rewardlab.vlm_reward.cli.add_commands``)."""
    from rewardlab.core.config import schema_lines

    for name, cls, func, help_, example, hint in (
        ("vlm-prefs", PrefsArgs, _cmd_prefs,
         "label frame pairs with a VLM judge and train a preference reward model (RL-VLM-F)",
         "rewardlab vlm-prefs task=cartpole_swingup out=runs/prefs "
         "vlm.judge_base_url=http://localhost:8000/v1 vlm.judge_model=qwen2.5-vl", "out=DIR"),
        ("vlm-progress", ProgressArgs, _cmd_progress,
         "train a progress model on recorded successful episodes (vlm-eval's episodes.npz)",
         "rewardlab vlm-progress episodes_file=runs/vlm-eval-cartpole_swingup/episodes.npz "
         "out=runs/progress.pt", "out=FILE"),
    ):  # fmt: skip
        p = sub.add_parser(
            name,
            help=help_,
            description=f"{cls.__doc__}\n\nexample: {example}",
            epilog="keys:\n" + "\n".join(schema_lines(cls)),
            formatter_class=formatter_class,
        )
        p.add_argument("overrides", nargs="*", metavar="key=value", help=f"settings, e.g. {hint}")
        p.set_defaults(func=func)
