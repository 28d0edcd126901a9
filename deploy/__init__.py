"""ROS 2 deployment (not yet implemented; see the deploy issue). Imports nothing from agents."""
