"""The layers of docs/design.md point down only: one import-graph test per rule.

Every module of the package is parsed (nothing is imported), and every ``import`` counts --
at module level, inside functions, under ``if TYPE_CHECKING`` -- plus string references of the
form ``"rewardlab.<module>"`` / ``"rewardlab.<module>:<attr>"`` (lazy registry entries and
re-export tables import them on first use; ``find_spec("...")``, which only locates files, does
not count). Two subprocess checks then look at what importing
really loads.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

FOLDERS = {
    "rewardlab": "rewardlab",
    "envs": "rewardlab.envs",
    "agents": "rewardlab.agents",
    "rewards": "rewardlab.rewards",
    "vlm_reward": "rewardlab.vlm_reward",
    "deploy": "rewardlab.deploy",
}
"""Source folder -> import name (pyproject's package-dir)."""

LAYERS = ("core", "envs", "agents", "rewards", "vlm_reward", "deploy")
"""Top-level parts below the application; every other ``rewardlab.*`` module is the application."""

DATA = ("sim_configs",)
"""Data packages (YAML, no code): any layer may name them (to find their files)."""

_MODULE_REF = re.compile(r"rewardlab(\.[A-Za-z_]\w*)+(:[A-Za-z_][\w.]*)?")


@dataclass(frozen=True)
class Edge:
    """``module`` (file ``path``, line ``line``) imports or names ``target``."""

    module: str
    target: str
    path: str
    line: int
    how: str
    """``module``, ``function`` (inside a def) or ``string`` (a lazy reference)."""

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.module} -> {self.target} ({self.how})"


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT)
    parts = [FOLDERS[rel.parts[0]], *rel.parts[1:]]
    parts[-1] = parts[-1].removesuffix(".py")
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _edges_of(path: Path) -> list[Edge]:
    module = _module_name(path)
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    in_function: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            in_function.update(id(n) for n in ast.walk(node) if n is not node)
    # find_spec("rewardlab.x") locates a package's files without importing it: not an edge
    located = {
        id(arg)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and getattr(node.func, "attr", getattr(node.func, "id", None)) == "find_spec"
        for arg in node.args
    }
    rel = str(path.relative_to(ROOT))
    edges = []
    for node in ast.walk(tree):
        how = "function" if id(node) in in_function else "module"
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            # "from rewardlab.rewards import sandbox" names a submodule: count both spellings
            targets = [prefix] + [f"{prefix}.{a.name}" for a in node.names if a.name != "*"]
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and _MODULE_REF.fullmatch(node.value)
            and id(node) not in located
        ):
            targets, how = [node.value.partition(":")[0]], "string"
        edges += [
            Edge(module, t, rel, node.lineno, how) for t in targets if t.startswith("rewardlab")
        ]
    return edges


def _all_edges() -> list[Edge]:
    edges = []
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            edges += _edges_of(path)
    return edges


EDGES = _all_edges()


def layer(module: str) -> str:
    """``core``, ``envs``, ..., ``data`` (:data:`DATA`), or ``app`` (``rewardlab`` itself and
    every other subpackage)."""
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in DATA:
        return "data"
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else "app"


def _is_existing_module(name: str) -> bool:
    """Whether ``name`` is a module or package of this source tree (not an attribute)."""
    parts = name.split(".")
    for folder, prefix in FOLDERS.items():
        pre = prefix.split(".")
        if parts[: len(pre)] == pre and (
            folder != "rewardlab" or len(parts) == 1 or parts[1] not in FOLDERS
        ):
            rest = parts[len(pre) :]
            base = ROOT / folder / Path(*rest) if rest else ROOT / folder
            return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()
    return False


def _violations(
    source_layer: str, allowed: set[str], allow_modules: tuple[str, ...] = ()
) -> list[str]:
    bad = []
    for e in EDGES:
        if layer(e.module) != source_layer or layer(e.target) in allowed | {source_layer, "data"}:
            continue
        if not _is_existing_module(e.target) and e.how != "string":
            continue  # "from x import name": the module x is checked on its own
        if e.target.startswith(allow_modules):
            continue
        bad.append(str(e))
    return bad


@pytest.mark.unit
def test_the_scan_sees_every_kind_of_import() -> None:
    """The scanner finds module-level, function-level and string (lazy) references (so the
    rules below are not vacuous)."""
    hows = {e.how for e in EDGES}
    assert hows == {"module", "function", "string"}, hows
    assert len({e.module for e in EDGES}) > 60
    assert any(e.module == "rewardlab.agents.registry" and e.target == "rewardlab.agents.ppo_agent" for e in EDGES)  # fmt: skip


@pytest.mark.unit
def test_core_imports_nothing_from_rewardlab() -> None:
    bad = [
        str(e)
        for e in EDGES
        if layer(e.module) == "core" and layer(e.target) not in ("core", "data")
    ]
    assert not bad, "rewardlab.core must import nothing else of RewardLab:\n" + "\n".join(bad)


@pytest.mark.unit
def test_deploy_imports_only_core() -> None:
    bad = _violations("deploy", {"core"})
    assert not bad, "deploy imports only rewardlab.core (no simulator, no trainer):\n" + "\n".join(
        bad
    )


@pytest.mark.unit
def test_envs_imports_only_core_and_deploy() -> None:
    bad = _violations("envs", {"core", "deploy"})
    assert not bad, "envs imports only core and deploy (the ros2 backend):\n" + "\n".join(bad)


@pytest.mark.unit
def test_agents_import_only_core_and_envs() -> None:
    bad = _violations("agents", {"core", "envs"})
    assert not bad, "agents know envs only through the batched API:\n" + "\n".join(bad)


@pytest.mark.unit
def test_rewards_import_only_core_and_envs() -> None:
    bad = _violations("rewards", {"core", "envs"})
    assert not bad, "rewards import neither agents nor the application:\n" + "\n".join(bad)


@pytest.mark.unit
def test_vlm_reward_imports_only_core_envs_and_the_llm_client() -> None:
    bad = _violations("vlm_reward", {"core", "envs"}, allow_modules=("rewardlab.rewards.llm",))
    bad = [b for b in bad if not b.split(" -> ")[1].startswith("rewardlab.rewards ")]
    assert not bad, "vlm_reward imports core, envs and the LLM client only:\n" + "\n".join(bad)


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return set(out.stdout.split())


@pytest.mark.unit
def test_importing_envs_loads_no_rewards_agents_or_application() -> None:
    loaded = _loaded_after("import rewardlab.envs")
    above = sorted(
        m for m in loaded if m.startswith("rewardlab.") and layer(m) in ("agents", "rewards", "vlm_reward", "app")
    )  # fmt: skip
    assert "rewardlab.envs" in loaded and not above, above


@pytest.mark.unit
def test_the_command_line_parses_without_torch() -> None:
    """Building the whole ``rewardlab`` parser (every command's --help) imports no torch,
    MuJoCo or trainer: the commands import their work when they run."""
    loaded = _loaded_after("import rewardlab.cli; rewardlab.cli.build_parser()")
    heavy = sorted(
        m
        for m in loaded
        if m.split(".")[0] in ("torch", "mujoco", "stable_baselines3", "open_clip")
    )
    assert "rewardlab.cli" in loaded and not heavy, heavy[:10]
    assert not {"rewardlab.pipeline", "rewardlab.search.reward_search"} & loaded
