"""Start the mbrl_node control node with a ROS 2 parameters file.

    ros2 launch mbrl_node mbrl_node.launch.py
    ros2 launch mbrl_node mbrl_node.launch.py config:=/path/to/robot.params.yaml namespace:=/robot1

The parameters file (ROS form, see mbrl_node.params.yaml) is both the node's configuration
(`--config FILE`) and its parameter overrides (`--ros-args --params-file FILE`). The node name
picks the file's section (`<node_name>:` or `/**:`). Remap topics by including this file with
`remappings`, or with `ros2 run mbrl_node mbrl_node ... --ros-args -r /cmd_vel:=/robot/cmd_vel`.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import EnvironmentVariable, LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    config = LaunchConfiguration('config')
    return LaunchDescription([
        DeclareLaunchArgument(
            'config',
            default_value=PathJoinSubstitution(
                [FindPackageShare('mbrl_node'), 'launch', 'mbrl_node.params.yaml']),
            description='ROS 2 parameters file holding the node configuration'),
        DeclareLaunchArgument(
            'node_name', default_value='mbrl_node',
            description='node name; also the section of the parameters file that applies'),
        DeclareLaunchArgument(
            'namespace', default_value='',
            description='namespace of the node (and of its relative topics)'),
        DeclareLaunchArgument(
            'checkpoint_dir',
            default_value=PathJoinSubstitution([EnvironmentVariable('HOME'), '.ros', 'mbrl_node']),
            description='where the replay buffer and the learned models are kept (resumed from)'),
        DeclareLaunchArgument(
            'use_sim_time', default_value='false',
            description='stamp messages and run the lifecycle timer on /clock'),
        Node(
            package='mbrl_node',
            executable='mbrl_node',
            name=LaunchConfiguration('node_name'),
            namespace=LaunchConfiguration('namespace'),
            arguments=['--config', config],
            parameters=[
                config,
                {
                    'checkpointDir': LaunchConfiguration('checkpoint_dir'),
                    'use_sim_time': LaunchConfiguration('use_sim_time'),
                },
            ],
            output='screen',
            emulate_tty=True,
            # On Ctrl-C the node saves its buffer and model before exiting: give it time
            # before launch escalates to SIGTERM (which the node takes as "exit now").
            sigterm_timeout='30',
        ),
    ])
