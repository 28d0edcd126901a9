"""RewardLab: robot control policies from rewards stated in language."""

__version__ = "0.1.0"
