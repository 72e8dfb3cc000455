"""Finding the executor's own container and the mount that holds the workspace (pure parts)."""

from __future__ import annotations

import pytest

from conveyor.docker.mountinfo import own_container_id
from conveyor.errors import RunnerError
from conveyor.runner.containers import script_of
from conveyor.runner.workspace import Placement, SharedMount, mount_for

CID = "10b8468bd3ebb706bbe50d1f81d201b9fe81d983794709073eaa28048799acbc"
MOUNTINFO = f"""\
172 144 0:59 / / rw,relatime master:4 - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/A
178 177 0:29 /docker/{CID} /sys/fs/cgroup/cpu ro,nosuid - cgroup cgroup rw,cpu
189 172 254:0 /volumes/jh/_data /var/jenkins_home rw,relatime - ext4 /dev/vda rw
190 172 254:0 /var/lib/docker/containers/{CID}/resolv.conf /etc/resolv.conf rw - ext4 /dev/vda rw
191 172 254:0 /var/lib/docker/containers/{CID}/hostname /etc/hostname rw - ext4 /dev/vda rw
"""
MOUNTS = [
    {
        "Type": "volume",
        "Name": "jh",
        "Source": "/x",
        "Destination": "/var/jenkins_home",
        "RW": True,
    },
    {"Type": "bind", "Source": "/srv/certs", "Destination": "/certs/client", "RW": False},
    {"Type": "bind", "Source": "/run/docker.sock", "Destination": "/var/run/docker.sock"},
    {"Type": "tmpfs", "Destination": "/var/jenkins_home/tmp"},
]


def test_own_container_id_from_mountinfo() -> None:
    assert own_container_id(MOUNTINFO) == CID
    assert own_container_id("172 144 0:59 / / rw - ext4 /dev/vda rw\n") is None


def test_the_deepest_mount_holding_a_path() -> None:
    ws = "/var/jenkins_home/workspace/demo_app"
    assert mount_for(ws, MOUNTS) == SharedMount("volume", "jh", "/var/jenkins_home")
    assert mount_for("/certs/client", MOUNTS) == SharedMount(
        "bind", "/srv/certs", "/certs/client", read_only=True
    )
    assert mount_for("/var/jenkins_homeX/ws", MOUNTS) is None  # a prefix is not a parent
    assert mount_for("/var/jenkins_home/tmp/x", MOUNTS) == SharedMount(
        "volume", "jh", "/var/jenkins_home"
    )  # tmpfs cannot be shared: the volume under it is the closest shareable one
    assert SharedMount("bind", "/srv/certs", "/certs/client", True).argv() == [
        "--mount",
        "type=bind,source=/srv/certs,destination=/certs/client,readonly",
    ]


def test_a_workspace_inside_the_container_layer_is_an_error() -> None:
    with pytest.raises(RunnerError, match="own filesystem"):
        Placement(CID, tuple(MOUNTS)).share("/home/ws", "workspace")


def test_root_files_are_handed_back_with_the_exit_status_kept() -> None:
    script = script_of(["make"], "1000:1000")
    assert script.startswith('trap \'find "$WORKSPACE" -user 0 -exec chown 1000:1000 {} +')
    assert script.endswith("make\n")
    with pytest.raises(RunnerError):
        script_of(["make"], "1000:1000; rm -rf /")
