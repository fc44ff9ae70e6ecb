"""The machinery under roscoe's tests works the way roscoe talks to engines: through the
Docker-compatible API over the engine's unix socket.

- gVisor: a container with roscoe's lock-down runs under gVisor on Docker and on Podman.
- Rootless Podman: a keep-id container writes into a bind-mounted folder as the test user.
- The FUSE bucket: what a process or a container writes into the mount becomes an object; a
  second mount without allow_other is closed to root and to the engines.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from helpers import BASE_IMAGE, ENGINE_HOSTS, skip_or_fail
from helpers_engine_api import EngineAPI, EngineAPIError
from helpers_infra import (
    BucketWorkspace,
    FuseMount,
    GVisorRuntime,
    RootlessPodman,
    folder_owned_by,
    mount_options,
)

# What roscoe's run containers get (roscoe.engine.runs.RunCalls.run_create).
LOCKED_DOWN = {
    "CapDrop": ["ALL"],
    "SecurityOpt": ["no-new-privileges"],
    "ReadonlyRootfs": True,
    "PidsLimit": 512,
    "Memory": 256 * 1024 * 1024,
    "MemorySwap": 256 * 1024 * 1024,
    "Tmpfs": {"/tmp": "rw,size=64m"},
}
OBJECT_DEADLINE_S = 20.0


def api_with_base_image(host: str, needed_by: str) -> EngineAPI:
    api = EngineAPI(host)
    if not api.ping():
        skip_or_fail(f"no engine answers at {host} (scripts/engines.sh start)", needed_by)
    if not api.image_present(BASE_IMAGE):
        skip_or_fail(f"{BASE_IMAGE} is not in the engine at {host} (make test-images)", needed_by)
    return api


def wait_for_key(workspace: BucketWorkspace, key: str) -> None:
    end = time.monotonic() + OBJECT_DEADLINE_S
    while key not in (keys := workspace.s3.keys(workspace.prefix)):
        assert time.monotonic() < end, f"{key} never became an object; keys: {keys}"
        time.sleep(0.2)


# ------------------------------------------------------------------------------ gVisor
def test_a_locked_down_container_runs_under_gvisor(
    gvisor_runtime: GVisorRuntime, engine_name: str, tmp_path: Path
) -> None:
    api = api_with_base_image(gvisor_runtime.host, "gvisor")
    case = tmp_path / "case"
    case.mkdir()
    case.chmod(0o777)
    result = api.run(
        BASE_IMAGE,
        ["sh", "-c", "cat /proc/version; dmesg; echo done > /data/out.txt"],
        user="1000:1000",
        host_config={**LOCKED_DOWN, "Binds": [f"{case}:/data"], **gvisor_runtime.host_config},
    )
    assert result.exit_code == 0, result.output
    assert "Starting gVisor" in result.output
    # The engine's own record agrees: Docker's HostConfig.Runtime, Podman's OCIRuntime.
    if engine_name == "docker":
        assert result.inspect["HostConfig"]["Runtime"] == gvisor_runtime.runtime
    else:
        assert result.libpod_inspect is not None
        assert result.libpod_inspect["OCIRuntime"] == gvisor_runtime.runtime
    # Through gVisor's file proxy, the bind mount is the host's folder, written as uid 1000.
    out = case / "out.txt"
    assert out.read_text() == "done\n"
    assert out.stat().st_uid == 1000

    # The control: the same container on the engine's usual endpoint is not under gVisor.
    plain = api_with_base_image(ENGINE_HOSTS[engine_name], engine_name).run(
        BASE_IMAGE, ["sh", "-c", "cat /proc/version; dmesg"], user="1000:1000"
    )
    assert "gVisor" not in plain.output
    assert plain.output.splitlines()[0] != result.output.splitlines()[0]  # the host's kernel


def test_podman_compat_api_ignores_hostconfig_runtime() -> None:
    """Pins Podman's behaviour: HostConfig.Runtime is accepted and silently ignored (the
    container runs under the service's default runtime). If this starts failing, Podman has
    begun to honour it and gVisor on Podman no longer needs a service of its own."""
    api = api_with_base_image(ENGINE_HOSTS["podman"], "podman")
    result = api.run(BASE_IMAGE, ["sh", "-c", "dmesg || true"], host_config={"Runtime": "runsc"})
    assert result.exit_code == 0, result.output
    assert "gVisor" not in result.output
    assert result.libpod_inspect is not None
    assert result.libpod_inspect["OCIRuntime"] != "runsc"


# ------------------------------------------------------------------------------ rootless
def test_rootless_keep_id_container_writes_files_as_the_rootless_user(
    rootless_podman: RootlessPodman,
) -> None:
    api = api_with_base_image(rootless_podman.host, "rootless")
    assert api.libpod_info()["host"]["security"]["rootless"] is True
    uid, gid = rootless_podman.uid, rootless_podman.gid
    # 0700 and the user's own: nobody else, not even a subordinate uid, may write here.
    with folder_owned_by(uid, gid, 0o700) as folder:
        result = api.run(
            BASE_IMAGE,
            ["sh", "-c", "id -u; id -g; echo written > /data/out.txt"],
            user=f"{uid}:{gid}",
            host_config={**LOCKED_DOWN, "UsernsMode": "keep-id", "Binds": [f"{folder}:/data"]},
        )
        assert result.exit_code == 0, result.output
        assert result.output.split()[:2] == [str(uid), str(gid)]
        written = folder / "out.txt"
        assert written.read_text() == "written\n"
        assert (written.stat().st_uid, written.stat().st_gid) == (uid, gid)


def test_rootless_container_without_keep_id_writes_as_a_subordinate_uid(
    rootless_podman: RootlessPodman,
) -> None:
    """The control for the test above: without keep-id, container uid 1000 is not the user."""
    api = api_with_base_image(rootless_podman.host, "rootless")
    uidmap = api.libpod_info()["host"]["idMappings"]["uidmap"]
    subordinate = next(m for m in uidmap if m["container_id"] == 1)
    expected = subordinate["host_id"] + 1000 - 1
    with folder_owned_by(rootless_podman.uid, rootless_podman.gid, 0o777) as folder:
        result = api.run(
            BASE_IMAGE,
            ["sh", "-c", "echo written > /data/out.txt"],
            user="1000:1000",
            host_config={**LOCKED_DOWN, "Binds": [f"{folder}:/data"]},
        )
        assert result.exit_code == 0, result.output
        assert (folder / "out.txt").stat().st_uid == expected != rootless_podman.uid


# ------------------------------------------------------------------------------ bucket
def test_a_file_written_into_the_bucket_mount_becomes_an_object(
    bucket_workspace: BucketWorkspace,
) -> None:
    case = bucket_workspace.path / "projects" / "case-1"
    case.mkdir()
    (case / "note.txt").write_text("from the host\n")
    key = f"{bucket_workspace.prefix}projects/case-1/note.txt"
    wait_for_key(bucket_workspace, key)
    assert bucket_workspace.s3.read(key) == b"from the host\n"
    assert f"{bucket_workspace.prefix}Tools/" in bucket_workspace.s3.keys(bucket_workspace.prefix)


def test_a_container_writes_into_the_bucket_through_a_bind_mount(
    bucket_workspace: BucketWorkspace, engine_name: str, engine_host: str
) -> None:
    api = api_with_base_image(engine_host, engine_name)
    case = bucket_workspace.path / "projects" / "case-2"
    case.mkdir()
    result = api.run(
        BASE_IMAGE,
        ["sh", "-c", "echo from a container > /data/out.txt"],
        user="1000:1000",
        host_config={**LOCKED_DOWN, "Binds": [f"{case}:/data"]},
    )
    assert result.exit_code == 0, result.output
    key = f"{bucket_workspace.prefix}projects/case-2/out.txt"
    wait_for_key(bucket_workspace, key)
    assert bucket_workspace.s3.read(key) == b"from a container\n"


def test_a_mount_without_allow_other_is_closed_to_root_and_the_engines(
    bucket_mount_without_allow_other: FuseMount,
    bucket_workspace: BucketWorkspace,
    engine_name: str,
    engine_host: str,
) -> None:
    mount = bucket_mount_without_allow_other
    options = mount_options(mount.path)
    assert options is not None
    assert "fstype=fuse.s3fs" in options
    assert "allow_other" not in options
    assert f"user_id={mount.uid}" in options
    workspace = mount.under(bucket_workspace.prefix)
    # Its owner sees this test's workspace through it ...
    as_owner = ["setpriv", f"--reuid={mount.uid}", f"--regid={mount.gid}", "--clear-groups"]
    listed = subprocess.run(
        [*as_owner, "ls", str(workspace)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    assert sorted(listed.stdout.split()) == ["Tools", "projects"]
    # ... root does not ...
    with pytest.raises(PermissionError):
        os.listdir(mount.path)
    # ... and neither does the engine's daemon.
    api = api_with_base_image(engine_host, engine_name)
    with pytest.raises(EngineAPIError):
        api.run(BASE_IMAGE, ["true"], host_config={"Binds": [f"{workspace}/projects:/data"]})
