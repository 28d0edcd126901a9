"""The project's tiny CLIP model: training script (:mod:`.train`) and captioned scenes
(:mod:`.captions`). The trained model ships under ``rewardlab/vlm_reward/models/``."""
