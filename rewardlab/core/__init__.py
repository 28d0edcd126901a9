"""Leaf modules shared by every layer: they import nothing from the rest of RewardLab.

- :mod:`rewardlab.core.config`: the one config engine (bounded YAML, frozen dataclasses
  validated at load, errors naming the file, key and value).
- :mod:`rewardlab.core.files`: atomic writes, bounded reads, hashing.
- :mod:`rewardlab.core.reward`: the reward contract (``RewardFn``, ``RewardTerm``, ``compose``)
  that tasks implement and reward code fulfils.
- :mod:`rewardlab.core.registry`: name -> object registries with "did you mean" errors.
- :mod:`rewardlab.core.resources`: where the shipped ``sim_configs/`` is (checkout, wheel or
  ament prefix).

``tests/test_layers.py`` checks that nothing here imports another ``rewardlab`` module.
"""
