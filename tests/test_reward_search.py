"""Reward search against a local OpenAI-compatible server answering recorded replies.

The real client, prompts, sandbox, worker processes, PPO and the task's own evaluation run;
only the LLM is replaced, by tests/openai_server.py speaking the chat-completions API over HTTP.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from openai_server import ChatRequest, OpenAIServer, fixture

from rewardlab.rewards import prompting
from rewardlab.search.candidate import CandidateEval, CandidateResult, CandidateSpec
from rewardlab.search.config import load_search_config
from rewardlab.search.reward_search import RewardSearch

ROUND1 = ["broken_unknown_state", "hack", "hang", "no_code"]
"""Round 1: nothing usable -- an unknown state name, a hacked reward, an endless loop, prose."""
ROUND2 = ["good", "broken_syntax", "no_code", "broken_unknown_state"]
"""Round 2 (after reflection): one good reward among failures."""


def recorded_llm(req: ChatRequest) -> str:
    """Round 1 for the first prompt; round 2 once the prompt carries reflection feedback."""
    text = req.text("user")
    if "VERDICT" in text:  # a critic request
        return fixture("critic_reject" if "speed" in text else "critic_accept")
    reflecting = any(m["role"] == "assistant" for m in req.messages)
    names = ROUND2 if reflecting else ROUND1
    return fixture(names[req.seed % len(names)])


def _search_cfg(run_dir: Path, base_url: str, cache: Path, **kw):
    overrides = {
        "task": "cartpole_balance",
        "description": "Balance the pole upright on the cart for the whole episode.",
        "run_dir": str(run_dir),
        "rounds": 2,
        "candidates": 4,
        "candidate_steps": 60_000,
        "halving": False,
        "eval_episodes": 10,
        "winner_seeds": 0,
        "videos": "best",
        "workers": 2,
        "trial_timeout_s": 8,
        "train": {"num_envs": 64},
        "llm": {
            "base_url": base_url,
            "model": "test-model",
            "cache_dir": str(cache),
            "backoff_s": 0.01,
            "max_retries": 1,
        },
    }
    for k, v in kw.items():
        if isinstance(v, dict) and isinstance(overrides.get(k), dict):
            overrides[k] = {**overrides[k], **v}
        else:
            overrides[k] = v
    return load_search_config(overrides)


@pytest.mark.unit
def test_extract_code_variants():
    good = fixture("good")
    ex = prompting.extract_code(good)
    assert ex.code is not None and ex.code.startswith("import torch")
    assert "def compute_reward" in ex.code and "```" not in ex.code
    # the last block that defines the function wins (a draft, then the final version)
    two = "draft:\n```python\ndef compute_reward(s, a):\n    return 1\n```\nfinal:\n```py\ndef compute_reward(state, action):\n    return 2\n```"
    assert "return 2" in prompting.extract_code(two).code
    # an unclosed fence at the end of a truncated reply still counts
    assert (
        "return 3"
        in prompting.extract_code("```python\ndef compute_reward(s, a):\n    return 3\n").code
    )
    # bare code without fences
    assert prompting.extract_code("def compute_reward(s, a):\n    return 4\n").code is not None
    # no code: a reason the LLM can act on
    assert prompting.extract_code(fixture("no_code")).problem.startswith("the reply has no")
    # DrEureka's reward class of `_reward_<term>(self)` methods is reward code too
    dre = "```python\nclass EurekaReward():\n    def _reward_up(self):\n        return self.env.dof_pos[:, 0]\n```"
    assert "_reward_up" in prompting.extract_code(dre).code
    helper = "```python\ndef helper(x):\n    return x\n```"
    assert "none defines `compute_reward" in prompting.extract_code(helper).problem
    assert prompting.extract_code("   ").problem == "the reply was empty"


@pytest.mark.unit
def test_prompts_render_schema_priors_and_feedback():
    msgs = prompting.initial_messages(
        "cartpole_balance", "Balance it.", "- pole_angle: [] rad", 1, 0.02, 500, safety_priors=True
    )
    assert msgs[0]["role"] == "system" and "compute_reward(state" in msgs[0]["content"]
    user = msgs[1]["content"]
    assert "- pole_angle: [] rad" in user and "Balance it." in user and "action rate" in user
    result = {
        "id": "r1c1",
        "status": "trained",
        "fitness": 0.25,
        "steps": 1000,
        "eval_episodes": 10,
        "correlation": -0.5,
        "curves": {"reward/speed": [[100, 1.0], [200, 3.0]], "charts/success_rate": [[200, 0.0]]},
        "failure_analysis": "9 of 10 episodes failed",
    }
    failed = {
        "id": "r1c0",
        "status": "failed",
        "error": {"kind": "unknown_state", "message": "state entry 'x' does not exist"},
    }
    text = prompting.reflection_message([result], failures=[failed], human="too jerky")["content"]
    assert "speed: [1, 3], Max: 3, Mean: 2, Min: 1" in text
    assert "task_score" in text and "0.25" in text and "-0.50" in text
    assert "9 of 10 episodes failed" in text and "too jerky" in text
    assert "`r1c0`: unknown_state: state entry 'x' does not exist" in text
    assert prompting.critic_verdict(fixture("critic_reject")) is False
    assert prompting.critic_verdict(fixture("critic_accept")) is True
    assert prompting.critic_verdict("no idea") is None


@pytest.mark.unit
def test_search_config_errors_name_key_and_value(tmp_path):
    from rewardlab.core.config import ConfigError

    with pytest.raises(ConfigError, match="command line: executor: got 'dask'"):
        load_search_config({"task": "cartpole_balance", "description": "x", "executor": "dask"})
    with pytest.raises(ConfigError, match="did you mean 'candidates'"):
        load_search_config({"task": "cartpole_balance", "description": "x", "candidatse": 3})
    with pytest.raises(ConfigError, match="llm.temperature"):
        load_search_config({"task": "t", "description": "x", "llm": {"temperature": "hot"}})
    cfg = load_search_config({"task": "cartpole_balance", "description": "x"})
    assert cfg.candidate_steps == 60_000  # from sim_configs/search/cartpole_balance.yaml
    assert cfg.rung_steps() == [30_000, 60_000]


@pytest.mark.slow
def test_search_end_to_end_reflection_finds_a_good_reward_and_replays(tmp_path):
    """Round 1 has only broken/poor rewards; round 2 (reflection) has a good one; the winner's
    policy balances the pole (the task's own success); a replay from the cache with the server
    down reproduces the search."""
    cache = tmp_path / "cache"
    with OpenAIServer(recorded_llm) as srv:
        cfg = _search_cfg(tmp_path / "search", srv.base_url, cache)
        state = RewardSearch(cfg).run()
        requests = srv.requests
    root = tmp_path / "search"

    # every candidate is persisted, with its outcome
    r1 = {c["id"]: c for c in state["rounds"][0]["candidates"]}
    assert r1["r1c0"]["error_kind"] == "unknown_state"
    assert r1["r1c1"]["status"] == "trained" and r1["r1c1"]["fitness"] < 0.5  # the hack
    assert r1["r1c2"]["error_kind"] == "timeout"  # the endless loop
    assert r1["r1c3"]["error_kind"] == "no_code"
    for r in (1, 2):
        for k in range(4):
            d = root / f"round_{r}" / f"r{r}c{k}"
            assert (d / "reply.md").is_file() and (d / "result.json").is_file()
    r2 = {c["id"]: c for c in state["rounds"][1]["candidates"]}
    assert r2["r2c0"]["status"] == "trained" and r2["r2c1"]["error_kind"] == "syntax"

    # the reflection prompt carried round 1's statistics and errors
    prompt2 = json.loads((root / "round_2" / "prompt.json").read_text())
    feedback = prompt2[-1]["content"]
    assert prompt2[-2]["role"] == "assistant" and "cart_vel" in prompt2[-2]["content"]
    assert "speed: [" in feedback and "task_score" in feedback
    assert "pole_angle_rad" in feedback and "timeout" in feedback
    assert len(requests) == 2  # one n=4 request per round

    # the winner is the good reward, and its policy reaches the task's success threshold
    winner = state["winner"]
    assert winner["id"] == "r2c0"
    assert winner["fitness_mean"] >= 0.9
    assert (root / "winner" / "reward.py").read_text() == (
        root / "round_2/r2c0/code.py"
    ).read_text()
    assert (root / "winner" / "export" / "policy.pt").is_file()
    assert (root / "round_2" / "best.mp4").stat().st_size > 1000  # the round's best, rendered
    report = (root / "report.md").read_text()
    assert "| [r1c2](round_1/r1c2/) | native | failed |" in report and "timeout" in report
    assert (root / "plots" / "fitness.png").is_file() and (
        root / "plots" / "winner_curves.png"
    ).is_file()

    # replay: server down, offline from the cache, a fresh directory
    replay_cfg = _search_cfg(
        tmp_path / "replay",
        srv.base_url,
        cache,
        llm={"offline": True, "max_retries": 0},
        videos="none",
    )
    replay = RewardSearch(replay_cfg).run()
    assert replay["llm_usage"]["requests"] == 0 and replay["llm_usage"]["cache_hits"] == 8
    assert replay["winner"]["id"] == "r2c0"
    for a, b in zip(state["rounds"], replay["rounds"], strict=True):
        assert [(c["id"], c["status"], c["error_kind"]) for c in a["candidates"]] == [
            (c["id"], c["status"], c["error_kind"]) for c in b["candidates"]
        ]
    assert replay["winner"]["fitness_mean"] >= 0.9


@pytest.mark.unit
def test_cli_reports_bad_settings_and_unreachable_llm(tmp_path, capsys):
    from rewardlab.cli import main

    assert main(["reward-search", "--task", "cartpole_balance", "executor=dask"]) == 2
    assert "description: got ''" in capsys.readouterr().err
    args = ["reward-search", "--task", "no_such_task", "--description", "x", "llm.model=m"]
    assert main(args) == 2
    assert "no_such_task" in capsys.readouterr().err
    with OpenAIServer(["x"]) as srv:
        url = srv.base_url  # a port nobody listens on after the block
    run_dir = tmp_path / "s"
    args = ["reward-search", "--task", "cartpole_balance", "--description", "balance",
            f"run_dir={run_dir}", f"llm.base_url={url}", "llm.model=test-model",
            "llm.max_retries=0", "trial_steps=4"]  # fmt: skip
    assert main(args) == 3
    err = capsys.readouterr().err
    assert "LLM error" in err and f"run_dir={run_dir}" in err


@pytest.mark.slow
def test_cli_search_resumes_without_retraining(tmp_path, capsys):
    """``rewardlab reward-search`` end to end; a second run on the same directory after losing
    one candidate's result trains only that candidate again, answering from the cache."""
    from rewardlab.cli import main

    run_dir = tmp_path / "s"
    with OpenAIServer(lambda req: fixture(["good", "hack"][req.seed % 2])) as srv:
        args = [
            "reward-search", "--task", "cartpole_balance", "--description", "Balance the pole.",
            f"run_dir={run_dir}", f"llm.base_url={srv.base_url}", "llm.model=test-model",
            "rounds=1", "candidates=2", "candidate_steps=30000", "halving=false",
            "eval_episodes=4", "winner_seeds=1", "winner_steps=4096", "videos=none",
            "workers=2", "trial_steps=8",
        ]  # fmt: skip
        assert main(args) == 0
    out = capsys.readouterr().out
    assert "[rewardlab] winner r1c" in out and "fitness:" in out
    state = json.loads((run_dir / "search.json").read_text())
    assert state["finished"] and len(state["winner"]["fitness_per_seed"]) == 1
    assert (run_dir / "winner" / "export" / "policy.json").is_file()
    first = json.loads((run_dir / "round_1/r1c0/result.json").read_text())

    # lose r1c1's results, as if the search had crashed while training it; the server is down
    for name in ("result.json", "rung_0.json"):
        (run_dir / "round_1" / "r1c1" / name).unlink()
    cfg = load_search_config(
        {"task": "cartpole_balance", "description": "Balance the pole.", "run_dir": str(run_dir),
         "rounds": 1, "candidates": 2, "candidate_steps": 30000, "halving": False,
         "eval_episodes": 4, "winner_seeds": 1, "winner_steps": 4096, "videos": "none",
         "workers": 2, "trial_steps": 8,
         "llm": {"base_url": srv.base_url, "model": "test-model", "offline": True}}
    )  # fmt: skip
    search = RewardSearch(cfg)
    search.run()
    assert search.trained == 1  # only r1c1; r1c0 and the winner's seed run were kept
    assert json.loads((run_dir / "round_1/r1c0/result.json").read_text()) == first
    assert json.loads((run_dir / "round_1/r1c1/result.json").read_text())["status"] == "trained"


@pytest.mark.slow
def test_ray_executor_on_local_ray():
    """The Ray path: candidate jobs as Ray tasks on a local instance, each in the sandbox;
    a good reward trains and is scored, a broken one comes back as a structured error."""
    ray = pytest.importorskip("ray")
    from rewardlab.config import load_train_config
    from rewardlab.rewards.sandbox import SandboxLimits
    from rewardlab.search.candidate import candidate_job
    from rewardlab.search.executors import Job, RayExecutor

    cfg = load_train_config({"task": "cartpole_balance", "num_envs": 16, "nthread": 1})

    def spec(name: str) -> CandidateSpec:
        code = prompting.extract_code(fixture(name)).code
        return CandidateSpec(cfg, 512, code=code, eval_episodes=2, analyst=False)

    ex = RayExecutor(
        SandboxLimits(cpu_seconds=300, wall_seconds=240), num_cpus=1, init={"num_cpus": 2}
    )
    try:
        seen: list[str] = []
        good, broken = ex.run(
            [Job("good", candidate_job, (spec("good"),)),
             Job("broken", candidate_job, (spec("broken_unknown_state"),))],
            on_done=lambda o: seen.append(o.key),
        )  # fmt: skip
    finally:
        ex.close()
    assert not ray.is_initialized()
    assert sorted(seen) == ["broken", "good"]
    assert good.ok, good.error
    value = CandidateResult.from_data(good.value)
    assert value.steps >= 512 and 0.0 <= value.fitness <= 1.0
    assert value.history and isinstance(value.checkpoint, bytes)
    assert not broken.ok and broken.error.kind == "unknown_state"


@pytest.mark.unit
def test_critic_human_feedback_and_all_failed_reflection(tmp_path):
    """The options between LLM and training, without training: the critic rejects the hack,
    a ranking file picks the reflected candidate, and a round where everything failed reflects
    on the errors."""
    with OpenAIServer(recorded_llm) as srv:
        cfg = _search_cfg(tmp_path / "s", srv.base_url, tmp_path / "cache", critic=True,
                          human_feedback="file")  # fmt: skip
        search = RewardSearch(cfg, log=lambda line: None)
        search.info = {"schema": "- cart_vel: [] m/s", "action_dim": 1}
        cdir = tmp_path / "s" / "round_1"
        hack = {
            "id": "r1c1",
            "dir": "round_1/r1c1",
            "code": prompting.extract_code(fixture("hack")).code,
        }
        good = {
            "id": "r1c0",
            "dir": "round_1/r1c0",
            "code": prompting.extract_code(fixture("good")).code,
        }
        search._critic([good, hack], 1)
    assert hack["status"] == "rejected" and "ending the episode early" in hack["error"]["message"]
    assert json.loads((cdir / "r1c1" / "result.json").read_text())["status"] == "rejected"
    assert "status" not in good and good["critic"]["verdict"] is True
    assert (cdir / "r1c0" / "critic.md").read_text().endswith("VERDICT: ACCEPT\n")

    results = [
        {"id": "r1c0", "status": "trained", "fitness": 0.9, "dir": "round_1/r1c0"},
        {"id": "r1c1", "status": "trained", "fitness": 0.2, "dir": "round_1/r1c1"},
    ]
    (cdir / "human_feedback.txt").write_text("ranking: r1c1 r1c0\nThe cart drifts to the left.\n")
    human, ranking = search._human_feedback(1, results)
    assert ranking == ["r1c1", "r1c0"] and human == "The cart drifts to the left."
    assert "ranking:" in (cdir / "HUMAN_FEEDBACK_REQUEST.md").read_text()

    (cdir / "r1c0" / "reply.md").write_text(fixture("broken_unknown_state"))
    failed = [
        {"id": "r1c0", "status": "failed", "dir": "round_1/r1c0",
         "error": {"kind": "unknown_state", "message": "state entry 'pole_angle_rad' does not exist"}},
        {"id": "r1c1", "status": "failed", "dir": "round_1/r1c1",
         "error": {"kind": "no_code", "message": "the reply has no ```python code block"}},
    ]  # fmt: skip
    base = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    msgs = search._next_messages(base, failed, None, "be gentle")
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
    assert "pole_angle_rad" in msgs[2]["content"]  # the failed reply it answers
    assert "could not be used: unknown_state" in msgs[3]["content"]
    assert "no_code" in msgs[3]["content"] and "be gentle" in msgs[3]["content"]


@pytest.mark.unit
def test_process_executor_turns_failures_into_structured_errors():
    """Jobs that hang, allocate too much or raise come back as errors; the others still run."""
    import time

    from rewardlab.rewards.sandbox import SandboxLimits
    from rewardlab.search.executors import Job, ProcessExecutor

    ex = ProcessExecutor(SandboxLimits(wall_seconds=3, cpu_seconds=10, memory_mb=512), workers=2)
    seen: list[str] = []
    outs = ex.run(
        [
            Job("hang", time.sleep, (60,)),
            Job("huge", bytearray, (8 * 1024**3,)),
            Job("raise", int, ("not a number",)),
            Job("ok", abs, (-3,)),
        ],
        on_done=lambda o: seen.append(o.key),
    )
    assert [o.key for o in outs] == ["hang", "huge", "raise", "ok"] and sorted(seen) == sorted(
        ["hang", "huge", "raise", "ok"]
    )
    hang, huge, bad, ok = outs
    assert not hang.ok and hang.error.kind == "timeout" and hang.seconds < 30
    assert not huge.ok and huge.error.kind == "memory"
    assert not bad.ok and bad.error.kind == "exception" and "not a number" in bad.error.message
    assert ok.ok and ok.value == 3


class _ScriptedExecutor:
    """Answers training jobs with scripted fitness per candidate (tests the scheduling only;
    the real training path is tested end to end above)."""

    def __init__(self, fitness: dict[str, float]) -> None:
        self.fitness, self.jobs = fitness, []

    def run(self, jobs, on_done=None):
        from rewardlab.search.executors import JobOutcome

        outs = []
        for j in jobs:
            spec = j.args[0]
            self.jobs.append((j.key, spec.steps, spec.checkpoint))
            value = CandidateResult(
                steps=spec.steps,
                fitness=self.fitness[j.key],
                eval=CandidateEval(self.fitness[j.key], 0.0, 0.0, 1.0),
                checkpoint=f"{j.key}@{spec.steps}".encode(),
                history=[{"global_step": float(spec.steps), "reward/x": 1.0}],
                train_seconds=0.1,
            ).to_data()
            o = JobOutcome(j.key, True, value, None, 0.1)
            outs.append(o)
            if on_done:
                on_done(o)
        return outs

    def close(self):
        pass


@pytest.mark.unit
def test_successive_halving_continues_the_better_half_from_checkpoints(tmp_path):
    fitness = {"r1c0": 0.1, "r1c1": 0.8, "r1c2": 0.5, "r1c3": 0.0}
    ex = _ScriptedExecutor(fitness)
    with OpenAIServer(["unused"]) as srv:
        cfg = _search_cfg(tmp_path / "s", srv.base_url, tmp_path / "cache", halving=True,
                          halving_rungs=2, candidate_steps=1000)  # fmt: skip
        search = RewardSearch(cfg, executor=ex, log=lambda line: None)
    cands = [{"id": k, "dir": f"round_1/{k}", "code": "x"} for k in fitness]
    search._train_rungs(cands)
    first = [(k, s) for k, s, _ in ex.jobs[:4]]
    assert first == [(k, 500) for k in fitness]  # every candidate trains the first rung
    assert [(k, s, c) for k, s, c in ex.jobs[4:]] == [
        ("r1c1", 1000, b"r1c1@500"),  # the better half continues from its checkpoint
        ("r1c2", 1000, b"r1c2@500"),
    ]
    results = {
        k: json.loads((tmp_path / "s" / f"round_1/{k}/result.json").read_text()) for k in fitness
    }
    assert results["r1c0"]["stopped_at"] == 500 and results["r1c3"]["stopped_at"] == 500
    assert results["r1c1"]["stopped_at"] is None and results["r1c1"]["steps"] == 1000
    assert [p[0] for p in results["r1c1"]["curves"]["reward/x"]] == [500.0, 1000.0]
    # resuming trains nothing again
    ex.jobs.clear()
    search._train_rungs([{"id": k, "dir": f"round_1/{k}", "code": "x"} for k in fitness])
    assert ex.jobs == []


def _trial_search(tmp_path, srv):
    """A search on cartpole_balance with its task info and a few recorded states, not run."""
    from rewardlab.rewards.sandbox import record_states

    cfg = _search_cfg(tmp_path / "s", srv.base_url, tmp_path / "cache")
    search = RewardSearch(cfg, log=lambda line: None)
    search.info = search._task_info()
    search.states = record_states("cartpole_balance", num_envs=16, steps=8)
    return search


@pytest.mark.unit
def test_candidate_check_accepts_eureka_and_text2reward_replies(tmp_path):
    """Replies in Eureka (``@torch.jit.script``, arguments by name) and Text2Reward style pass
    the search's check path with their style recorded, and train in the worker's code path."""
    from rewardlab.config import load_train_config
    from rewardlab.search.candidate import train_candidate

    with OpenAIServer(["unused"]) as srv:
        search = _trial_search(tmp_path, srv)
    cands = []
    for k, name in enumerate(["eureka_cartpole", "text2reward_cartpole", "good"]):
        ex = prompting.extract_code(fixture(name))
        assert ex.code is not None, (name, ex.problem)
        cands.append({"id": f"r1c{k}", "dir": f"round_1/r1c{k}", "code": ex.code})
    search._trial(cands)
    eureka, t2r, native = cands
    for c, style in [(eureka, "eureka"), (t2r, "text2reward"), (native, "native")]:
        assert "status" not in c, c.get("error")  # not rejected
        assert c["style"] == style
    assert set(eureka["trial"]["components"]) == {"upright", "centered", "effort"}
    assert eureka["trial"]["component_stats"]["upright"]["max"] <= 1.0

    # the persisted result and the search state carry the style
    search._finalize(eureka, {"status": "trained", "fitness": 0.5, "steps": 64}, None)
    saved = json.loads((tmp_path / "s" / "round_1" / "r1c0" / "result.json").read_text())
    assert saved["style"] == "eureka" and "code" not in saved
    search.state.setdefault("rounds", [])
    search._record_round(1, [saved], saved, saved)
    state = json.loads((tmp_path / "s" / "search.json").read_text())
    assert state["rounds"][0]["candidates"][0]["style"] == "eureka"

    # the training worker compiles it in the detected style and trains on it (tiny budget)
    cfg = load_train_config(
        {"task": "cartpole_balance", "num_envs": 8, "device": "cpu", "ppo": {"num_steps": 16}}
    )
    spec = CandidateSpec(cfg, 128, code=eureka["code"], style="eureka", eval_episodes=2,
                         analyst=False)  # fmt: skip
    out = train_candidate(spec)
    assert out.steps >= 128 and 0.0 <= out.fitness <= 1.0
    assert "reward/upright" in out.history[-1]
    assert out.correlation is not None  # the candidate's total was computed every step


@pytest.mark.unit
def test_malformed_eureka_reply_gets_structured_feedback(tmp_path):
    """An Eureka reply with an argument our state lacks (``pole_tip_force``; IsaacGymEnvs' ``progress_buf`` is bound now) is rejected before any
    training, with an error that names the argument and lists the available names."""
    with OpenAIServer(["unused"]) as srv:
        search = _trial_search(tmp_path, srv)
    code = prompting.extract_code(fixture("eureka_unknown_arg")).code
    c = {"id": "r1c0", "dir": "round_1/r1c0", "code": code}
    search._trial([c])
    assert c["status"] == "failed" and c["final"] and c["style"] == "eureka"
    err = c["error"]
    assert err["kind"] == "unknown_state" and "pole_tip_force" in err["message"]
    assert "pole_angle" in err["feedback"]  # the names it could have used
    saved = json.loads((tmp_path / "s" / "round_1" / "r1c0" / "result.json").read_text())
    assert saved["error"]["kind"] == "unknown_state" and saved["style"] == "eureka"
    # the reflection prompt of a round where everything failed answers that error
    msg = prompting.error_message(saved, [], None)
    assert "pole_tip_force" in msg["content"]


@pytest.mark.unit
def test_search_without_nonzero_fitness_names_no_winner(tmp_path, monkeypatch, capsys):
    """Every candidate trains but scores fitness 0: no winner, nothing retrained or exported,
    the report and the CLI say so, and the exit status is EXIT_NO_WINNER."""
    from rewardlab.cli import main
    from rewardlab.search.cli import EXIT_NO_WINNER

    ex = _ScriptedExecutor({"r1c0": 0.0, "r1c1": 0.0})
    monkeypatch.setattr(RewardSearch, "executor", lambda self: ex)
    run_dir = tmp_path / "s"
    with OpenAIServer([fixture("good"), fixture("eureka_cartpole")]) as srv:
        args = ["reward-search", "--task", "cartpole_balance", "--description", "Balance the pole.",
                f"run_dir={run_dir}", "rounds=1", "candidates=2", "halving=false",
                "candidate_steps=1000", "winner_seeds=1", "videos=none", "workers=1",
                f"llm.base_url={srv.base_url}", "llm.model=test-model"]  # fmt: skip
        code = main(args)
    out = capsys.readouterr().out
    assert code == EXIT_NO_WINNER == 4
    assert "[rewardlab] no winner: no candidate reached nonzero fitness" in out
    assert [k for k, _, _ in ex.jobs] == ["r1c0", "r1c1"]  # no winner seed runs
    state = json.loads((run_dir / "search.json").read_text())
    assert state["winner"] is None and "nonzero fitness" in state["no_winner"]
    assert not (run_dir / "winner").exists()
    report = (run_dir / "report.md").read_text()
    assert "## No winner" in report and "## Winner" not in report
    assert "| eureka | trained |" in report and "| native | trained |" in report


@pytest.mark.slow
def test_dreureka_go1_search_runs_end_to_end_with_safety_priors(tmp_path, capsys):
    """DrEureka's setting from the shipped search config (sim_configs/search/go1_run_forward.yaml):
    the sentence and DrEureka's deployment priors reach the LLM with the Go1's state schema; a
    DrEureka-style ``class EurekaReward`` reply is checked in the sandbox, trains in a worker
    process on go1_velocity with the command held at 2 m/s, and is scored by the task's own
    success; a reply naming state the Go1 lacks is rejected before training. (The budget here is
    a smoke budget: the fitness is measured, not expected to be high.)"""
    from rewardlab.cli import main
    from rewardlab.core.resources import configs_path
    from rewardlab.search.cli import EXIT_NO_WINNER

    reward = (Path(__file__).parent / "fixtures" / "foreign" / "dreureka_go1.py").read_text()
    reply = "Track 2 m/s forward, stay level, with small deployment penalties.\n\n```python\n" + reward + "```\n"  # fmt: skip
    run_dir = tmp_path / "s"
    with OpenAIServer([reply, fixture("broken_unknown_state")]) as srv:
        args = ["reward-search", "--config", str(configs_path("search", "go1_run_forward.yaml")),
                f"run_dir={run_dir}", "rounds=1", "candidates=2", "halving=false",
                "candidate_steps=3072", "eval_episodes=2", "winner_seeds=0", "videos=none",
                "workers=1", "train.num_envs=16", f"llm.base_url={srv.base_url}",
                "llm.model=test-model"]  # fmt: skip
        code = main(args)
        prompt = srv.requests[0]["messages"]
    out = capsys.readouterr().out
    assert code in (0, EXIT_NO_WINNER), out[-2000:]
    text = "\n".join(m["content"] for m in prompt if isinstance(m["content"], str))
    assert "make the robot run forward at 2 m/s" in text
    assert "DrEureka's deployment priors" in text  # safety_priors: true in the config
    assert "base_lin_vel" in text and "projected_gravity" in text  # the Go1's state schema
    state = json.loads((run_dir / "search.json").read_text())
    cands = {c["id"]: c for c in state["rounds"][0]["candidates"]}
    good, bad = cands["r1c0"], cands["r1c1"]
    assert good["style"] == "dreureka" and good["status"] == "trained", good
    assert 0.0 <= good["fitness"] <= 1.0 and good["steps"] >= 3072
    assert bad["status"] == "failed" and bad["error_kind"] == "unknown_state"
    assert state["config"]["train"]["task_cfg"]["lin_vel_x"] == [2.0, 2.0]  # the held command
    report = (run_dir / "report.md").read_text()
    assert "| dreureka | trained |" in report
