"""What the tests know of the machinery beyond Docker and Podman: gVisor, rootless Podman and
an S3 bucket mounted with FUSE (all set up by scripts/engines.sh; its `env` exports the
ROSCOE_TEST_* variables read here, with the same defaults).

The S3 client here signs requests itself (AWS Signature V4, standard library only), so tests
can check what landed in the bucket without boto3 in the project's venv.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import hmac
import os
import shutil
import subprocess
import time
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

STATE = os.environ.get("ROSCOE_ENGINES_STATE", "/tmp/roscoe-engines")
GVISOR_RUNTIME = os.environ.get("ROSCOE_TEST_GVISOR_RUNTIME", "runsc")
PODMAN_GVISOR_HOST = os.environ.get(
    "ROSCOE_TEST_PODMAN_GVISOR_HOST", "unix:///run/podman/podman-gvisor.sock"
)
ROOTLESS_USER = os.environ.get("ROSCOE_TEST_ROOTLESS_USER", "roscoe-rootless")
ROOTLESS_HOST = os.environ.get("ROSCOE_TEST_ROOTLESS_HOST")
ROOTLESS_UID = os.environ.get("ROSCOE_TEST_ROOTLESS_UID")
ROOTLESS_GID = os.environ.get("ROSCOE_TEST_ROOTLESS_GID")
BUCKET_DIR = Path(os.environ.get("ROSCOE_TEST_BUCKET_DIR", f"{STATE}/bucket"))
S3_ENDPOINT = os.environ.get("ROSCOE_TEST_S3_ENDPOINT", "http://127.0.0.1:5100")
S3_BUCKET = os.environ.get("ROSCOE_TEST_S3_BUCKET", "roscoe-test-bucket")
S3_ACCESS_KEY_ID = os.environ.get("ROSCOE_TEST_S3_ACCESS_KEY_ID", "roscoe-test-key")
S3_SECRET_ACCESS_KEY = os.environ.get("ROSCOE_TEST_S3_SECRET_ACCESS_KEY", "roscoe-test-secret")

MOUNT_DEADLINE_S = 30.0
UNMOUNT_DEADLINE_S = 15.0


# ------------------------------------------------------------------------------ gVisor
@dataclass(frozen=True)
class GVisorRuntime:
    """How to run a container under gVisor on one engine, through its Docker-compatible API.

    Docker: the usual endpoint, with HostConfig.Runtime = "runsc" (registered in dockerd with
    --network=none). Podman: its compat API ignores HostConfig.Runtime, so gVisor is a Podman
    API service of its own whose default runtime is runsc; `host` is that service and
    `host_config` is empty. Either way: merge `host_config` into the HostConfig and create the
    container on `host`.
    """

    engine_name: str
    host: str
    host_config: dict[str, str]
    runtime: str  # what the engine's inspect data names: Docker's HostConfig.Runtime,
    # Podman's libpod OCIRuntime


# ------------------------------------------------------------------------------ rootless
@dataclass(frozen=True)
class RootlessPodman:
    """The rootless Podman API service of the test user (scripts/engines.sh)."""

    host: str
    user: str
    uid: int
    gid: int
    home: str


def rootless_podman_settings() -> RootlessPodman | None:
    """The test user's service, from ROSCOE_TEST_ROOTLESS_* or else from the user's entry."""
    import pwd

    try:
        entry = pwd.getpwnam(ROOTLESS_USER)
    except KeyError:
        return None
    if ROOTLESS_HOST and ROOTLESS_UID and ROOTLESS_GID:
        return RootlessPodman(
            ROOTLESS_HOST, ROOTLESS_USER, int(ROOTLESS_UID), int(ROOTLESS_GID), entry.pw_dir
        )
    host = f"unix:///run/user/{entry.pw_uid}/podman/podman.sock"
    return RootlessPodman(host, ROOTLESS_USER, entry.pw_uid, entry.pw_gid, entry.pw_dir)


_MISSING: dict[str, tuple[str, ...]] = {}


def rootless_missing_controllers(user: RootlessPodman) -> tuple[str, ...]:
    """The cgroup controllers a run's limits need (memory, pids) that the user's containers
    do not get, from Podman's own /libpod/info: none is delegated on a cgroup v1 host, where
    Podman drops a rootless container's limits without a word. Asked once per service."""
    from helpers_engine_api import EngineAPI

    if user.host not in _MISSING:
        info = EngineAPI(user.host).libpod_info()
        delegated = set(info["host"].get("cgroupControllers") or [])
        _MISSING[user.host] = tuple(n for n in ("memory", "pids") if n not in delegated)
    return _MISSING[user.host]


@contextlib.contextmanager
def folder_owned_by(uid: int, gid: int, mode: int = 0o700) -> Iterator[Path]:
    """A fresh folder in /tmp owned by uid:gid, removed afterwards.

    Not under pytest's tmp_path: its parents are root's and 0700, and a rootless engine must
    reach a bind-mount source as its own user.
    """
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="roscoe-test-owned-", dir="/tmp"))
    try:
        os.chown(path, uid, gid)
        path.chmod(mode)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# ------------------------------------------------------------------------------ S3
def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


class S3:
    """Just enough of the S3 API to see what a FUSE mount wrote: list keys and read objects."""

    def __init__(
        self,
        endpoint: str = S3_ENDPOINT,
        bucket: str = S3_BUCKET,
        key_id: str = S3_ACCESS_KEY_ID,
        secret: str = S3_SECRET_ACCESS_KEY,
        region: str = "us-east-1",
    ):
        self.endpoint = endpoint.rstrip("/")
        self.bucket = bucket
        self.key_id = key_id
        self.secret = secret
        self.region = region
        # Loopback only: never through a proxy from the environment.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def _get(self, path: str, query: dict[str, str] | None = None) -> bytes:
        query = query or {}
        canonical_query = "&".join(
            f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(query.items())
        )
        url = f"{self.endpoint}{path}" + (f"?{canonical_query}" if canonical_query else "")
        request = urllib.request.Request(url, headers=self._sign("GET", path, canonical_query))
        with self._opener.open(request, timeout=30) as response:
            return bytes(response.read())

    def _sign(self, method: str, path: str, canonical_query: str) -> dict[str, str]:
        """AWS Signature V4 headers for a request with an empty body."""
        now = datetime.datetime.now(datetime.timezone.utc)
        amz_date = now.strftime("%Y%m%dT%H%M%SZ")
        day = amz_date[:8]
        host = urlsplit(self.endpoint).netloc
        payload = hashlib.sha256(b"").hexdigest()
        signed = "host;x-amz-content-sha256;x-amz-date"
        canonical = "\n".join(
            [
                method,
                path,
                canonical_query,
                f"host:{host}\nx-amz-content-sha256:{payload}\nx-amz-date:{amz_date}\n",
                signed,
                payload,
            ]
        )
        scope = f"{day}/{self.region}/s3/aws4_request"
        to_sign = "\n".join(
            ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
        )
        key = _hmac(("AWS4" + self.secret).encode(), day)
        for part in (self.region, "s3", "aws4_request"):
            key = _hmac(key, part)
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        return {
            "x-amz-date": amz_date,
            "x-amz-content-sha256": payload,
            "Authorization": f"AWS4-HMAC-SHA256 Credential={self.key_id}/{scope}, "
            f"SignedHeaders={signed}, Signature={signature}",
        }

    def keys(self, prefix: str = "") -> list[str]:
        """Every object key under prefix (ListObjectsV2, all pages)."""
        ns = {"s3": "http://s3.amazonaws.com/doc/2006-03-01/"}
        found: list[str] = []
        token = ""
        while True:
            query = {"list-type": "2", "prefix": prefix}
            if token:
                query["continuation-token"] = token
            root = ET.fromstring(self._get(f"/{quote(self.bucket)}", query))
            found += [k.text or "" for k in root.findall("s3:Contents/s3:Key", ns)]
            token = root.findtext("s3:NextContinuationToken", default="", namespaces=ns)
            if root.findtext("s3:IsTruncated", default="false", namespaces=ns) != "true":
                return found

    def read(self, key: str) -> bytes:
        return self._get(f"/{quote(self.bucket)}/{quote(key, safe='/-_.~')}")

    def answers(self) -> bool:
        try:
            self.keys("roscoe-no-such-prefix/")
        except OSError:
            return False
        return True


@dataclass(frozen=True)
class BucketWorkspace:
    """A fresh workspace folder inside the mounted bucket: `path` holds projects/ and Tools/,
    and its objects' keys start with `prefix` (`s3.keys(prefix)` lists them)."""

    path: Path
    prefix: str
    s3: S3


# ------------------------------------------------------------------------------ FUSE
def mount_options(mountpoint: Path) -> set[str] | None:
    """The options (per mount and per superblock) of the mount at mountpoint, or None."""
    want = str(mountpoint)
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        point = fields[4].replace("\\040", " ").replace("\\011", "\t").replace("\\134", "\\")
        if point != want:
            continue
        tail = fields[fields.index("-") + 1 :]  # fstype, source, super options
        return set(fields[5].split(",")) | set(tail[2].split(",")) | {f"fstype={tail[0]}"}
    return None


@dataclass(frozen=True)
class FuseMount:
    path: Path  # the mount point: the bucket's root
    uid: int  # who mounted it (without allow_other, only processes with exactly this uid
    gid: int  # and this gid may enter it)
    allow_other: bool

    def under(self, prefix: str) -> Path:
        """The folder of this mount that holds the objects under prefix."""
        return self.path / prefix.strip("/")


@contextlib.contextmanager
def bucket_mounted(
    *, uid: int, gid: int, allow_other: bool, deadline_s: float = MOUNT_DEADLINE_S
) -> Iterator[FuseMount]:
    """A second s3fs mount of the test bucket, made by uid, in a fresh folder; unmounted after.

    Without allow_other only uid's own processes may enter it: not root, not an engine's
    daemon (the gcsfuse-on-a-VM trap).
    """
    with folder_owned_by(uid, gid) as home:
        mnt = home / "mnt"
        passwd = home / "passwd"
        mnt.mkdir()
        passwd.write_text(f"{S3_ACCESS_KEY_ID}:{S3_SECRET_ACCESS_KEY}\n")
        passwd.chmod(0o600)
        for p in (mnt, passwd):
            os.chown(p, uid, gid)
        options = f"passwd_file={passwd},url={S3_ENDPOINT},use_path_request_style,umask=0000"
        if allow_other:
            options += ",allow_other"
        argv = ["s3fs", S3_BUCKET, str(mnt), "-f", "-o", options]
        if uid != 0:
            argv = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--init-groups", *argv]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "NO_PROXY": "*", "no_proxy": "*"}
        proc = subprocess.Popen(
            argv, cwd=home, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        try:
            end = time.monotonic() + deadline_s
            while mount_options(mnt) is None:
                if proc.poll() is not None:
                    output = proc.stdout.read().decode() if proc.stdout else ""
                    raise RuntimeError(f"s3fs exited ({proc.returncode}) before mounting: {output}")
                if time.monotonic() > end:
                    raise RuntimeError(f"s3fs did not mount {mnt} within {deadline_s} s")
                time.sleep(0.05)
            yield FuseMount(mnt, uid, gid, allow_other)
        finally:
            _unmount(mnt, proc)


def _unmount(mnt: Path, proc: subprocess.Popen[bytes]) -> None:
    if mount_options(mnt) is not None:
        subprocess.run(["fusermount", "-u", str(mnt)], check=False, capture_output=True)
    try:
        proc.wait(timeout=UNMOUNT_DEADLINE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=UNMOUNT_DEADLINE_S)
    if mount_options(mnt) is not None:  # s3fs killed under a live mount: detach it
        subprocess.run(["umount", "-l", str(mnt)], check=False, capture_output=True)
    if proc.stdout:
        proc.stdout.close()
