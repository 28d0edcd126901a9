"""The LLM reward search (Eureka-style), application code above agents and rewards.

- :mod:`.reward_search`: the loop (:class:`~.reward_search.RewardSearch`): LLM rounds, sandboxed
  trial runs, critic, successive halving, reflection, the winner's retraining and export.
- :mod:`.candidate`: one candidate's training job (:class:`~.candidate.CandidateSpec` ->
  :class:`~.candidate.CandidateResult`), through the training pipeline.
- :mod:`.executors`: where jobs run (a local pool of limited worker processes, or Ray).
- :mod:`.report`: ``report.md`` and plots of a search directory.
- :mod:`.config`: :class:`~.config.SearchConfig`; :mod:`.cli`: ``rewardlab reward-search``.

Nothing is imported here (the command line reads :mod:`.cli` and :mod:`.config` without torch).
"""
