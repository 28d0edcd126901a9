"""Settings of a vision-language reward: which model scores frames, against which prompts, and
how its scores become a training reward (``TrainConfig.vlm``, validated at load).

Every field has a default, so ``reward=clip`` alone trains with the project's shipped tiny CLIP
model and the task's default prompts. Real models are named the way open_clip names them::

    rewardlab train task=humanoid_kneel reward=clip vlm.model=ViT-bigG-14 \\
        vlm.pretrained=laion2b_s39b_b160k
"""

from __future__ import annotations

import math
from dataclasses import dataclass

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
"""Allowed ``VLMConfig.precision`` values."""
SHAPING_MODES = ("auto", "on", "off")
"""Allowed ``VLMConfig.shaping`` values."""
NORMALIZE_MODES = ("none", "running", "minmax")
"""Allowed ``VLMConfig.normalize`` values."""
PERCEPTUAL_SPLITS = ("equal", "variance")
"""Allowed ``VLMConfig.perceptual_split`` values."""
PERCEPTUAL_COMBINES = ("progress", "weighted")
"""Allowed ``VLMConfig.perceptual_combine`` values."""
OT_MATCHES = ("frame", "trajectory")
"""Allowed ``VLMConfig.ot_match`` values."""


@dataclass(frozen=True)
class VLMConfig:
    """A frame-scoring reward model and how its score is turned into reward."""

    scorer: str = "clip"
    """Registry name of the frame scorer (``rewardlab.vlm_reward.base.SCORERS``): ``clip``
    (VLM-RM goal/baseline score), and the progress, judge and preference scorers, and
    ``perceptual`` / ``ot`` (rewards from demonstrations, ``demos``)."""
    model: str = "rewardlab-tiny-clip"
    """open_clip architecture name (``ViT-B-32``, ``ViT-bigG-14``, ...) or the name of a model
    shipped under ``rewardlab/vlm_reward/models/`` (``rewardlab-tiny-clip``: a 1.8 M-parameter
    CLIP trained on this project's rendered tasks)."""
    pretrained: str | None = None
    """open_clip pretrained tag (``laion2b_s39b_b160k``, ...), downloaded from the model hub on
    first use. Not allowed offline (``HF_HUB_OFFLINE=1``) unless already cached. ``None``: the
    shipped model's checkpoint, or ``checkpoint``."""
    checkpoint: str | None = None
    """Local checkpoint file (state dict, ``.pt``/``.bin``/``.safetensors``) for ``model``;
    loaded with the hub switched off. Needs ``checkpoint_sha256`` and the preprocessing
    (``image_mean``, ``image_std``, ``image_size``) unless it is a shipped model's file."""
    checkpoint_sha256: str | None = None
    """Expected SHA-256 (hex) of ``checkpoint``; loading stops if the file differs."""
    model_config: str | None = None
    """JSON file of an open_clip model config (``embed_dim``, ``vision_cfg``, ``text_cfg``) for an
    architecture open_clip does not know; registered under ``model``."""
    image_mean: tuple[float, float, float] | None = None
    """Per-channel mean the model was trained with (RGB, on [0, 1] pixels); required with
    ``checkpoint``. ``None`` with a pretrained tag: open_clip's value for that tag."""
    image_std: tuple[float, float, float] | None = None
    """Per-channel standard deviation, as ``image_mean``."""
    image_size: int | None = None
    """Square input size of the image tower in pixels; required with ``checkpoint`` unless the
    model config states it. ``None``: the model's own."""
    goal_prompts: tuple[str, ...] = ()
    """Descriptions of the goal state ("a humanoid robot kneeling"); their normalized text
    embeddings are averaged into ``g``. Empty: the task's default prompts."""
    baseline_prompts: tuple[str, ...] = ()
    """Descriptions of the environment without the goal ("a humanoid robot"), averaged into
    ``b``; ``d = g - b`` is the direction the VLM-RM projection keeps. Empty: the task's default
    baseline prompts."""
    alpha: float = 0.5
    """VLM-RM projection strength ``a`` in [0, 1]: ``P = a d d^T / |d|^2 + (1 - a) I``; 0 gives
    plain cosine similarity to the goal (up to an affine map), 1 projects onto ``d`` only."""
    batch_size: int = 64
    """Frames encoded per forward pass of the image tower."""
    precision: str = "auto"
    """Inference dtype: ``fp32``, ``bf16``, ``fp16`` (CUDA only), or ``auto`` (bf16 on a CUDA
    device that supports it, else fp32)."""
    device: str = "auto"
    """Torch device of the model: ``cpu``, ``cuda``, ``cuda:1``, or ``auto`` (cuda when
    available)."""
    render_size: int | None = None
    """Side of the square frames rendered for scoring (and for drawing ``demos``); ``None``: the
    scorer's ``image_size`` (the model's input size), so that no resize is needed. Larger frames
    are resized to the model's input (antialiased)."""
    camera_zoom: float = 1.0
    """Narrow the reward camera's field of view this many times (``tan(fovy / 2)`` divided by
    it, every view of a multi-view camera alike): the frame shows the middle ``1 / zoom`` of each
    view at the full resolution, so that small displacements near what the camera centres on
    (e.g. a target it tracks) span more pixels, at the cost of what lies outside. Applies to the
    frames scored in training, to demonstrations drawn for ``demos`` and to ``rewardlab
    vlm-eval``; frames from an env's own ``render`` (no tiled renderer) or a recording's camera
    are centre-cropped to ``1 / zoom`` instead. 1: the camera as the task declares it. 2 on
    arm_reach doubles the perceptual score's rise from 5 cm to 1 cm but halves it from 10 cm
    to 5 cm, and PPO trained worse on it (``benchmarks/results/vlm_demo_rewards.md``)."""
    frame_stride: int = 1
    """Score the worlds every k-th control step only (all together, plus at every step the
    worlds that just reset); in training a skipped step holds each world's last score. Divides
    the rendering and scoring cost by about k. 1 scores every step."""
    interpolate: bool = True
    """With ``frame_stride`` > 1 where both scored neighbours are known (offline scoring of
    recorded episodes, ``rewardlab vlm-eval``): interpolate skipped frames linearly (true) or
    hold the last score (false). Online training always holds."""
    shaping: str = "auto"
    """Potential-based shaping ``r = gamma * Phi(s') - Phi(s)`` with ``Phi`` the scaled score:
    ``on``, ``off``, or ``auto``: on for progress-like scorers when there is a base reward to
    shape (``task_weight`` > 0), off otherwise and for ``clip``. Shaping alone is a nearly empty
    objective: an episode's shaped return telescopes to ``gamma^T Phi(s_T) - Phi(s_0)``."""
    gamma: float = 0.99
    """Discount of the shaping term; use the learner's discount so that shaping keeps the optimal
    policy."""
    scale: float = 1.0
    """Multiplies the score before shaping, normalization and weighting."""
    offset: float = 0.0
    """Added to the score after ``scale`` (e.g. to centre a CLIP reward)."""
    normalize: str = "none"
    """``none``, ``running`` (z-score with the running mean and standard deviation of the scores
    seen so far) or ``minmax`` (running min-max to [0, 1]); applied before ``scale``."""
    weight: float = 1.0
    """Weight of the VLM reward term (``reward/vlm``) in the total reward."""
    task_weight: float = 0.0
    """Weight of the task's own reward terms mixed in (``reward/task``); 0 trains on the VLM
    reward alone."""
    async_scoring: bool = False
    """Pipeline each step's frames in chunks of 32: encode chunk k on a worker thread while chunk
    k+1 renders. Rewards stay those of the step just taken. Off by default: on a loaded 2-core
    CPU it gave no consistent gain (rendering and the model compete for the same cores; see
    ``benchmarks/results/vlm_scoring.md``); meant for a model on a GPU."""
    judge_base_url: str | None = None
    """Judge scorer (H4): base URL of the OpenAI-compatible vision chat server, up to ``/v1``
    (vLLM, Ollama ``http://localhost:11434/v1``, ...); null: ``$OPENAI_BASE_URL``, else OpenAI."""
    judge_model: str | None = None
    """Judge scorer: model name as the server knows it (``gpt-4o``, ``qwen2.5vl:7b``); null:
    ``$REWARDLAB_LLM_MODEL``."""
    judge_api_key_env: str = "OPENAI_API_KEY"
    """Judge scorer: environment variable holding the API key (never written to disk)."""
    judge_image_size: int = 224
    """Judge scorer: side in pixels of the square frames sent to the judge."""
    judge_image_format: str = "png"
    """Judge scorer: ``png`` (lossless) or ``jpeg`` (smaller requests)."""
    judge_concurrency: int = 8
    """Judge scorer: requests in flight at once."""
    judge_max_tokens: int = 256
    """Judge scorer: reply budget per request (raise it for reasoning models)."""
    judge_timeout_s: float = 120.0
    """Judge scorer: socket timeout of one request in seconds (slower replies are retried)."""
    judge_cache_dir: str | None = None
    """Judge scorer: folder of the on-disk reply cache (replays a run offline); null: none."""
    preference_checkpoint: str | None = None
    """Preference scorer: reward-ensemble file written by
    ``rewardlab.vlm_reward.preference_model.save_ensemble`` (required with ``scorer=preference``)."""
    preference_online: bool = False
    """Preference scorer: RL-VLM-F's online loop -- label pairs of frames seen during training
    with the judge (``judge_*``) and retrain the ensemble every ``preference_every`` frames;
    ``preference_checkpoint`` (optional) is the starting ensemble."""
    preference_dir: str | None = None
    """Preference scorer, online: folder of the labels and ensemble after each round (a new run
    over the same folder continues from them); null: kept in memory only."""
    preference_queries: int = 64
    """Preference scorer, online: pairs labelled per round."""
    preference_every: int = 10_000
    """Preference scorer, online: frames scored between rounds."""
    preference_max_queries: int = 2_000
    """Preference scorer, online: total label budget; the ensemble is fixed after it."""
    preference_background: bool = True
    """Preference scorer, online: label and retrain on a worker thread while training goes on
    with the previous ensemble (false: the step that triggers a round waits for it)."""
    progress_checkpoint: str | None = None
    """Progress scorer: learned progress-head file written by
    ``rewardlab.vlm_reward.progress.save_progress_model``; null: the CLIP prompt-interpolation
    progress (baseline prompts describe the start, goal prompts the end)."""

    demos: str | None = None
    """Perceptual and OT scorers: demonstrations -- an episode file (``.npz`` of ``rewardlab
    demos record``, or the ``episodes.npz`` of ``rewardlab vlm-eval``; its successful episodes
    are the demonstrations, drawn with the task's reward camera) or a file those scorers fitted
    and saved (it carries its own steps and features)."""
    demo_episodes: int = 8
    """Perceptual and OT scorers: use at most this many successful episodes of ``demos``."""
    perceptual_steps: int = 8
    """Perceptual scorer: steps ``K`` each demonstration is cut into (8: VOC 0.65 against 0.54
    with 4 on arm_reach, equal on cart-pole swing-up; ``benchmarks/results/vlm_demo_rewards.md``)."""
    perceptual_features: int = 32
    """Perceptual scorer: encoder feature dimensions selected per step (``M``)."""
    perceptual_split: str = "variance"
    """Perceptual scorer: ``equal`` (steps of equal duration) or ``variance`` (cut where the
    features change: least within-step squared deviation)."""
    perceptual_combine: str = "progress"
    """Perceptual scorer: ``progress`` (expected step under the step posterior, in [0, 1]) or
    ``weighted`` (the paper's sum of step likelihoods weighted 2^(i-1))."""
    ot_match: str = "frame"
    """OT scorer: ``frame`` (each frame matched to the demonstrations' frames alone, entropic
    soft-min of the cost: what training uses, one step at a time) or ``trajectory`` (Sinkhorn
    plan between a whole episode and each demonstration; offline, ``rewardlab vlm-eval`` only)."""
    ot_epsilon: float = 0.05
    """OT scorer: entropic regularization of Sinkhorn and of the per-frame soft-min (in units
    of the cosine cost, which lies in [0, 2])."""
    ot_iterations: int = 100
    """OT scorer: Sinkhorn iterations."""
    ot_preference_pairs: int = 0
    """OT scorer: RAPL-style preference alignment -- train a linear map of the embeddings on
    this many pairs of the ``demos`` episode set's episodes, the one with the higher task
    return preferred (a stand-in for a person's labels); 0: off (the frozen embeddings)."""

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field and what was expected."""
        if not self.scorer:
            raise ValueError("scorer: got '', expected a registered scorer name (e.g. clip)")
        if not self.model:
            raise ValueError("model: got '', expected an open_clip model name")
        for name in ("pretrained", "checkpoint", "checkpoint_sha256", "model_config"):
            if getattr(self, name) == "":
                raise ValueError(f"{name}: got '', expected a value or null")
        if self.pretrained is not None and self.checkpoint is not None:
            raise ValueError(
                f"pretrained: {self.pretrained!r} given together with checkpoint "
                f"{self.checkpoint!r}; expected only one of them"
            )
        sha = self.checkpoint_sha256
        if sha is not None and (
            len(sha) != 64 or any(c not in "0123456789abcdefABCDEF" for c in sha)
        ):
            raise ValueError(f"checkpoint_sha256: got {sha!r}, expected 64 hex digits")
        for name in ("image_mean", "image_std"):
            v = getattr(self, name)
            if v is not None and not all(math.isfinite(x) for x in v):
                raise ValueError(f"{name}: got {v!r}, expected 3 finite numbers")
        if self.image_std is not None and min(self.image_std) <= 0:
            raise ValueError(f"image_std: got {self.image_std!r}, expected values > 0")
        for name in ("image_size", "render_size"):
            v = getattr(self, name)
            if v is not None and not 8 <= v <= 4096:
                raise ValueError(f"{name}: got {v!r}, expected a size in pixels in [8, 4096]")
        for name in ("goal_prompts", "baseline_prompts"):
            if any(not p.strip() for p in getattr(self, name)):
                raise ValueError(f"{name}: contains an empty prompt, expected text")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha: got {self.alpha!r}, expected a number in [0, 1]")
        if self.batch_size < 1:
            raise ValueError(f"batch_size: got {self.batch_size!r}, expected >= 1")
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"precision: got {self.precision!r}, expected one of {', '.join(PRECISIONS)}"
            )
        if self.device != "auto" and not (
            self.device == "cpu" or self.device == "cuda" or self.device.startswith("cuda:")
        ):
            raise ValueError(f"device: got {self.device!r}, expected auto, cpu, cuda or cuda:<i>")
        if not (math.isfinite(self.camera_zoom) and self.camera_zoom >= 1.0):
            raise ValueError(
                f"camera_zoom: got {self.camera_zoom!r}, expected a number >= 1 (1: the camera "
                "as declared; a zoom only narrows the view)"
            )
        if self.frame_stride < 1:
            raise ValueError(f"frame_stride: got {self.frame_stride!r}, expected >= 1")
        if self.shaping not in SHAPING_MODES:
            raise ValueError(
                f"shaping: got {self.shaping!r}, expected one of {', '.join(SHAPING_MODES)}"
            )
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"gamma: got {self.gamma!r}, expected a number in (0, 1]")
        if self.normalize not in NORMALIZE_MODES:
            raise ValueError(
                f"normalize: got {self.normalize!r}, expected one of {', '.join(NORMALIZE_MODES)}"
            )
        for name in ("judge_base_url", "judge_model", "judge_cache_dir"):
            if getattr(self, name) == "":
                raise ValueError(f"{name}: got '', expected a value or null")
        if self.judge_base_url is not None and not self.judge_base_url.startswith(
            ("http://", "https://")
        ):
            raise ValueError(
                f"judge_base_url: got {self.judge_base_url!r}, expected an http(s):// URL"
            )
        if self.judge_image_format not in ("png", "jpeg"):
            raise ValueError(
                f"judge_image_format: got {self.judge_image_format!r}, expected png or jpeg"
            )
        for name in ("judge_image_size", "judge_concurrency", "judge_max_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: got {getattr(self, name)!r}, expected >= 1")
        if not self.judge_timeout_s > 0:
            raise ValueError(f"judge_timeout_s: got {self.judge_timeout_s!r}, expected > 0")
        for name in ("preference_queries", "preference_every", "preference_max_queries"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: got {getattr(self, name)!r}, expected >= 1")
        if self.preference_dir == "":
            raise ValueError("preference_dir: got '', expected a folder or null")
        for name in ("preference_checkpoint", "progress_checkpoint"):
            if getattr(self, name) == "":
                raise ValueError(f"{name}: got '', expected a file path or null")
        if self.demos == "":
            raise ValueError("demos: got '', expected an episode set (.npz) or null")
        for name in ("demo_episodes", "perceptual_features", "ot_iterations"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: got {getattr(self, name)!r}, expected >= 1")
        if self.ot_preference_pairs < 0:
            raise ValueError(
                f"ot_preference_pairs: got {self.ot_preference_pairs!r}, expected >= 0"
            )
        if self.perceptual_steps < 2:
            raise ValueError(f"perceptual_steps: got {self.perceptual_steps!r}, expected >= 2")
        for name, allowed in (
            ("perceptual_split", PERCEPTUAL_SPLITS),
            ("perceptual_combine", PERCEPTUAL_COMBINES),
            ("ot_match", OT_MATCHES),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"{name}: got {getattr(self, name)!r}, expected one of {', '.join(allowed)}"
                )
        if not (math.isfinite(self.ot_epsilon) and self.ot_epsilon > 0):
            raise ValueError(f"ot_epsilon: got {self.ot_epsilon!r}, expected a number > 0")
        for name in ("scale", "offset", "weight", "task_weight"):
            v = getattr(self, name)
            if not math.isfinite(v):
                raise ValueError(f"{name}: got {v!r}, expected a finite number")

    def shaping_on(self, progress_like: bool) -> bool:
        """Whether potential-based shaping applies for a scorer with this ``progress_like``."""
        auto = progress_like and self.task_weight > 0
        return self.shaping == "on" or (self.shaping == "auto" and auto)
