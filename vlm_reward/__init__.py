"""Vision-language rewards (not yet implemented; see the VLM rewards issue)."""
