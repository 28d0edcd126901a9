"""Views of a batched env for other libraries: gymnasium and stable-baselines3."""
