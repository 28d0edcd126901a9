"""Launch the rewardlab deploy node: ``ros2 launch rewardlab deploy.launch.py policy:=DIR robot:=arm``.

Arguments: ``policy`` (export folder, required), ``robot`` (name under sim_configs/robots/ or a
YAML path; default arm), ``trigger`` (joint_state | timer). Remap the robot config's topics with
the usual ``--ros-args -r`` rules if your controller names differ, or write a robot YAML.
"""

from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [
            DeclareLaunchArgument("policy", description="export folder of the policy"),
            DeclareLaunchArgument("robot", default_value="arm", description="robot config"),
            DeclareLaunchArgument("trigger", default_value="joint_state"),
            Node(
                package="rewardlab",
                executable="rewardlab-deploy",
                name="rewardlab_deploy",
                output="screen",
                emulate_tty=True,
                parameters=[
                    {
                        "policy": LaunchConfiguration("policy"),
                        "robot": LaunchConfiguration("robot"),
                        "trigger": LaunchConfiguration("trigger"),
                    }
                ],
            ),
        ]
    )
