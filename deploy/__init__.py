"""ROS 2 deployment: exported policy -> safe joint commands (see docs/deploy.md, docs/deploy_internals.md).

ROS-free core: ``robot_config``, ``policy``, ``observation``, ``actions``, ``safety``,
``controller``; transports: ``ros_node`` (rclpy) and ``transport_dds`` (Cyclone DDS, no ROS);
``sim_robot`` (MuJoCo robot on the same topics), ``camera``, ``recording``. Imports nothing from
``rewardlab.agents``; importing this package imports nothing heavy.
"""
