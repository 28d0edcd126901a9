"""Config loading: layering, overrides, conversion, and every error naming source, key, value."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from rewardlab.agents.config import PPOConfig
from rewardlab.config import (
    EvalConfig,
    TrainConfig,
    config_dir,
    load_train_config,
    resolved_config_yaml,
    train_config_from_dict,
)
from rewardlab.core.config import (
    ConfigError,
    build,
    field_docs,
    merge_layers,
    parse_overrides,
    parse_scalar,
)
from rewardlab.envs import task_names

pytestmark = pytest.mark.unit

TASK = "task=cartpole_balance"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def configs(tmp_path: Path) -> Path:
    """A private sim_configs/ with a default and a task layer."""
    root = tmp_path / "sim_configs"
    _write(
        root / "train" / "default.yaml",
        "num_envs: 8\nseed: 1\ntotal_steps: 100\nppo: {num_steps: 16}\n",
    )
    _write(
        root / "train" / "cartpole_balance.yaml",
        "task: cartpole_balance\nseed: 2\nppo: {gamma: 0.9}\n",
    )
    return root


# -- layering and overrides -----------------------------------------------------------------------


def test_layers_merge_in_order(configs: Path, tmp_path: Path) -> None:
    user = _write(tmp_path / "user.yaml", "seed: 3\ntotal_steps: 500\nppo: {lam: 0.9}\n")
    cfg = load_train_config([TASK, "total_steps=700"], config_file=user, configs=configs)
    assert cfg.num_envs == 8  # default.yaml
    assert cfg.seed == 3  # user file over task file over default
    assert cfg.total_steps == 700  # command line over user file
    # mappings merge key by key across all layers
    assert (cfg.ppo.num_steps, cfg.ppo.gamma, cfg.ppo.lam) == (16, 0.9, 0.9)
    assert cfg.ppo.learning_rate == PPOConfig().learning_rate


def test_task_file_only_for_its_task(configs: Path) -> None:
    assert load_train_config([TASK], configs=configs).seed == 2
    assert load_train_config(["task=cartpole_swingup"], configs=configs).seed == 1


def test_run_config_layer_sits_under_user_and_command_line(configs: Path, tmp_path: Path) -> None:
    run = _write(tmp_path / "run" / "config.yaml", "task: cartpole_balance\nseed: 9\nnum_envs: 4\n")
    cfg = load_train_config(["num_envs=5"], run_config=run, configs=configs)
    assert (cfg.task, cfg.seed, cfg.num_envs) == ("cartpole_balance", 9, 5)


def test_shipped_configs_load() -> None:
    cfg = load_train_config([TASK])
    assert cfg.task == "cartpole_balance" and cfg.agent == "ppo"
    assert (config_dir() / "train" / "default.yaml").is_file()
    for path in sorted((config_dir() / "train").glob("*.yaml")):
        if path.stem == "default":
            continue
        if path.stem not in task_names():
            continue  # a task file shipped ahead of its task
        cfg = load_train_config([f"task={path.stem}"])
        assert cfg.task == path.stem
        cfg.task_config().validate()


def test_dotted_overrides_and_conversion() -> None:
    cfg = load_train_config(
        [
            TASK,
            "ppo.learning_rate=3e-4",
            "ppo.actor_hidden=[128, 128]",
            "ppo.gamma=1",
            "total_steps=1e5",
            "task_cfg.episode_steps=200",
            "task_cfg.reward_weights.upright=2",
            "eval.seed=null",
            "sb3.n_steps=64",
        ]
    )
    assert cfg.ppo.learning_rate == pytest.approx(3e-4)
    assert cfg.ppo.actor_hidden == (128, 128)
    assert cfg.ppo.gamma == 1.0 and isinstance(cfg.ppo.gamma, float)
    assert cfg.total_steps == 100_000 and isinstance(cfg.total_steps, int)
    assert cfg.task_cfg == {"episode_steps": 200, "reward_weights": {"upright": 2.0}}
    task_cfg = cfg.task_config()
    assert task_cfg.episode_steps == 200 and task_cfg.fall_angle == 0.25  # the task's own default
    assert cfg.eval.seed is None and cfg.eval_seed() == cfg.seed + 10_000
    assert cfg.sb3 == {"n_steps": 64}


def test_parse_scalar_and_overrides() -> None:
    assert parse_scalar("3e-4") == pytest.approx(3e-4)
    assert parse_scalar("1E6") == 1e6
    assert (
        parse_scalar("true") is True and parse_scalar("null") is None and parse_scalar("") is None
    )
    assert parse_scalar("[64, 64]") == [64, 64] and parse_scalar("abc") == "abc"
    assert parse_overrides(["a.b=1", "a.c=x", "d=2.5"]) == {"a": {"b": 1, "c": "x"}, "d": 2.5}


def test_resolved_yaml_round_trips(tmp_path: Path) -> None:
    cfg = load_train_config(
        [TASK, "ppo.actor_hidden=[32]", "task_cfg.episode_steps=99", "run_dir=runs/x"]
    )
    text = resolved_config_yaml(cfg)
    data = yaml.safe_load(text)
    assert (
        data["task_cfg"]["episode_steps"] == 99 and "fall_angle" in data["task_cfg"]
    )  # the whole task config
    assert data["ppo"]["actor_hidden"] == [32] and data["run_dir"] == "runs/x"
    again = load_train_config([], config_file=_write(tmp_path / "c.yaml", text))
    assert dataclasses.replace(again, task_cfg={}) == dataclasses.replace(cfg, task_cfg={})
    assert again.task_config() == cfg.task_config()


def test_frozen_and_documented() -> None:
    cfg = train_config_from_dict({"task": "cartpole_balance"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.num_envs = 3  # type: ignore[misc]
    for cls in (TrainConfig, EvalConfig, PPOConfig):
        docs = field_docs(cls)
        missing = [f.name for f in dataclasses.fields(cls) if not docs.get(f.name)]
        assert not missing, f"{cls.__name__} fields without a docstring: {missing}"


def test_values_are_not_rewritten() -> None:
    """What the user wrote is what the config holds (no clamping or defaults in __post_init__)."""
    cfg = load_train_config([TASK, "eval.num_envs=null", "eval.episodes=7", "run_dir=null"])
    assert cfg.eval.num_envs is None and cfg.eval.resolved_num_envs() == 7 and cfg.run_dir is None


# -- errors ------------------------------------------------------------------------------------------


ERRORS = [
    # (overrides, substrings the message must contain)
    (["task=cartpol"], ["command line", "task", "'cartpol'", "did you mean 'cartpole_", "known tasks", "cartpole_balance"]),
    (["num_envs=4"], ["command line", "task", "required", "known tasks"]),
    ([TASK, "num_env=4"], ["command line", "num_env", "unknown key", "did you mean 'num_envs'"]),
    ([TASK, "ppo.learnig_rate=1"], ["command line", "ppo.learnig_rate", "did you mean 'learning_rate'", "allowed:"]),
    ([TASK, "num_envs=abc"], ["command line", "num_envs", "'abc'", "an integer"]),
    ([TASK, "num_envs=2.5"], ["command line", "num_envs", "2.5", "an integer"]),
    ([TASK, "resume=maybe"], ["command line", "resume", "'maybe'", "true or false"]),
    ([TASK, "ppo.actor_hidden=[64, x]"], ["command line", "ppo.actor_hidden[1]", "'x'", "an integer"]),
    ([TASK, "ppo=3"], ["command line", "ppo", "3", "a mapping"]),
    ([TASK, "ppo.gamma=2"], ["command line", "ppo.gamma", "2", "[0, 1]"]),
    ([TASK, "ppo.schedule=cosine"], ["command line", "ppo.schedule", "'cosine'", "adaptive, linear, fixed"]),
    ([TASK, "num_envs=0"], ["command line", "num_envs", "0", "in [1, "]),
    ([TASK, "num_envs=1000000000"], ["command line", "num_envs", "1000000000", "in [1, "]),
    ([TASK, "num_envs=99999999999999999999999"], ["command line", "num_envs", "64-bit integer"]),
    ([TASK, "ppo.learning_rate=.inf"], ["command line", "ppo.learning_rate", "inf", "finite number"]),
    ([TASK, "ppo.clip_ratio=.inf"], ["command line", "ppo.clip_ratio", "finite number"]),
    ([TASK, "ppo.desired_kl=.nan"], ["command line", "ppo.desired_kl", "finite number"]),
    ([TASK, "run_dir=/etc/passwd"], ["command line", "run_dir", "/etc/passwd", "a directory"]),
    ([TASK, "--num_envs"], ["command line", "--num_envs", "num_envs=..."]),
    ([TASK, "backend=warp9"], ["command line", "backend", "'warp9'", "mujoco"]),
    ([TASK, "agent=td3"], ["command line", "agent", "'td3'", "ppo, sac, sb3_ppo, sb3_sac"]),
    ([TASK, "device=gpu0"], ["command line", "device", "'gpu0'", "cpu"]),
    ([TASK, "eval.episodes=0"], ["command line", "eval.episodes", "0", ">= 1"]),
    ([TASK, "eval.vidoe=true"], ["command line", "eval.vidoe", "did you mean 'video'"]),
    ([TASK, "task_cfg.episode_steps=0"], ["command line", "task_cfg.episode_steps", "0", ">= 1"]),
    ([TASK, "task_cfg.episod_steps=5"], ["command line", "task_cfg.episod_steps", "did you mean 'episode_steps'"]),
    ([TASK, "task_cfg.reset_noise=abc"], ["command line", "task_cfg.reset_noise", "'abc'", "a number"]),
    ([TASK, "task_cfg.reward_weights.upright=x"], ["command line", "task_cfg.reward_weights.upright", "'x'", "a number"]),
    ([TASK, "task_cfg=5"], ["command line", "task_cfg", "5", "a mapping"]),
    ([TASK, "agent=sb3_ppo", "sb3.n_step=8"], ["command line", "sb3.n_step", "did you mean 'n_steps'"]),
    ([TASK, "ppo.actor_hidden=64"], ["command line", "ppo.actor_hidden", "64", "a list of integers"]),
    (["task=ant_run", "task_cfg.healthy_z_range=[0.3]"], ["task_cfg.healthy_z_range", "[0.3]", "a list of 2 numbers"]),
    ([TASK, "oops"], ["command line", "oops", "key=value"]),
    ([TASK, "ppo..gamma=1"], ["command line", "ppo..gamma", "empty segment"]),
]  # fmt: skip


@pytest.mark.parametrize(("overrides", "expected"), ERRORS, ids=[" ".join(o) for o, _ in ERRORS])
def test_command_line_errors(overrides: list[str], expected: list[str]) -> None:
    task = next((o.split("=", 1)[1] for o in overrides if o.startswith("task=")), None)
    if task and task not in task_names() and task != "cartpol":
        pytest.skip(f"task {task} is not registered")
    with pytest.raises(ConfigError) as info:
        load_train_config(overrides)
    msg = str(info.value)
    for part in expected:
        assert part in msg, f"{part!r} missing from: {msg}"
    assert isinstance(info.value, ValueError)
    assert info.value.source == "command line"


def test_error_names_the_file_it_came_from(configs: Path, tmp_path: Path) -> None:
    user = _write(tmp_path / "mine.yaml", "ppo:\n  num_steps: lots\n")
    with pytest.raises(ConfigError) as info:
        load_train_config([TASK], config_file=user, configs=configs)
    assert info.value.source == "mine.yaml" or info.value.source.endswith("mine.yaml")
    assert (
        "ppo.num_steps" in str(info.value)
        and "'lots'" in str(info.value)
        and "an integer" in str(info.value)
    )

    # a bad value in the task layer names the task file, not the user file or command line
    _write(configs / "train" / "cartpole_balance.yaml", "task_cfg: {frame_skip: 0}\n")
    with pytest.raises(ConfigError) as info:
        load_train_config([TASK], configs=configs)
    assert (
        info.value.source.endswith("cartpole_balance.yaml")
        and info.value.key == "task_cfg.frame_skip"
    )

    # a command-line override of the bad value fixes it
    assert (
        load_train_config([TASK, "task_cfg.frame_skip=3"], configs=configs).task_config().frame_skip
        == 3
    )

    _write(configs / "train" / "default.yaml", "ppo: {gama: 0.5}\n")
    with pytest.raises(
        ConfigError, match=r"default\.yaml: ppo\.gama: unknown key; did you mean 'gamma'"
    ):
        load_train_config([TASK, "task_cfg.frame_skip=1"], configs=configs)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ppo: [1, 2\n", "invalid YAML"),
        ("- 1\n- 2\n", "expected a mapping"),
        ("unknown_thing: 1\n", "unknown_thing: unknown key"),
    ],
)
def test_bad_files(tmp_path: Path, text: str, expected: str) -> None:
    path = _write(tmp_path / "bad.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_train_config([TASK], config_file=path)
    assert "bad.yaml" in str(info.value) and expected in str(info.value)


_BOMB = (
    "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(8)
    )
    + "eval: *i\n"
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (_BOMB, "alias bomb"),  # 10**9 values once expanded; it used to print 312M characters
        ("ppo: " + "[" * 20_000 + "]" * 20_000 + "\n", "nested deeper than"),  # RecursionError
        ("seed: 1\nseed: 2\n", "duplicate key 'seed' (line 2)"),  # used to keep the last one
        (b"ppo:\n  gamma: 0.9\xff\n", "not UTF-8 text (byte 0xff at offset 17)"),
        ("seed: " + "9" * 40 + "\n", "64-bit integer"),
        ("ppo: {learning_rate: .inf}\n", "expected a finite number"),
    ],
    ids=["alias-bomb", "deep-nesting", "duplicate-key", "non-utf8", "huge-int", "inf"],
)
def test_hostile_files_get_one_bounded_line(
    tmp_path: Path, text: str | bytes, expected: str
) -> None:
    path = tmp_path / "hostile.yaml"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    with pytest.raises(ConfigError) as info:
        load_train_config([TASK], config_file=path)
    msg = str(info.value)
    assert "hostile.yaml" in msg and expected in msg, msg
    assert len(msg) <= 600 and "\n" not in msg


@pytest.mark.parametrize("special", ["/dev/zero", "/dev/urandom", "."])
def test_config_file_must_be_a_small_regular_file(special: str) -> None:
    with pytest.raises(ConfigError, match=r"not a regular file|is a directory"):
        load_train_config([TASK], config_file=special)


def test_config_file_size_is_bounded(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("# " + "x" * (2 << 20) + "\n")
    with pytest.raises(ConfigError, match=r"big\.yaml: larger than 1,048,576 bytes"):
        load_train_config([TASK], config_file=path)


def test_long_values_are_cut_in_messages() -> None:
    with pytest.raises(ConfigError) as info:
        load_train_config([TASK, "seed=" + "y" * 10_000])
    assert len(str(info.value)) <= 600 and "more)" in str(info.value)


def test_list_item_errors_name_the_layer_that_set_the_list() -> None:
    @dataclasses.dataclass(frozen=True)
    class Lists:
        xs: tuple[int, ...] = ()

    merged, sources = merge_layers([("a.yaml", {"xs": [1, "x"]})], default_source="defaults")
    with pytest.raises(ConfigError) as info:
        build(Lists, merged, "", sources)
    assert info.value.source == "a.yaml" and info.value.key == "xs[1]"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nope.yaml: file not found"):
        load_train_config([TASK], config_file=tmp_path / "nope.yaml")


def test_device_auto_resolves_to_the_simulators_device() -> None:
    import torch

    cuda = torch.cuda.is_available()
    cfg = load_train_config([TASK])
    assert cfg.device == "auto"  # the loaded value is what the user (or default.yaml) wrote
    assert cfg.resolved_device() == "cpu"  # CPU worlds: the learner stays on the host
    warp = load_train_config([TASK, "backend=warp"])
    assert warp.resolved_device() == ("cuda" if cuda else "cpu")
    assert load_train_config([TASK, "backend=warp", "device=cpu"]).resolved_device() == "cpu"
