"""Image choice, reference parsing, version verdicts and ensure_image's policies (fake engine)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from roscoe import __version__
from roscoe.config.settings import Settings
from roscoe.engine.fake import FakeEngine, Published
from roscoe.errors import ImageError, UsageError
from roscoe.images.choice import ImageChoice, choose_image
from roscoe.images.ensure import ensure_image, image_status
from roscoe.images.reference import parse_reference
from roscoe.images.version import (
    DEV_IMAGE,
    OCI_VERSION_LABEL,
    pinned_image,
    version_match,
)


@pytest.mark.parametrize(
    ("ref", "repository", "tag", "digest"),
    [
        ("roscoe-runner:dev", "roscoe-runner", "dev", None),
        ("127.0.0.1:5000/team/img", "127.0.0.1:5000/team/img", None, None),
        ("127.0.0.1:5000/team/img:v1", "127.0.0.1:5000/team/img", "v1", None),
        ("localhost:5000/img:latest", "localhost:5000/img", "latest", None),
        ("ghcr.io/o/r@sha256:" + "b" * 64, "ghcr.io/o/r", None, "sha256:" + "b" * 64),
        ("h:1/o/r:v2@sha256:" + "c" * 64, "h:1/o/r", "v2", "sha256:" + "c" * 64),
    ],
)
def test_references_parse_without_splitting_on_the_port(
    ref: str, repository: str, tag: str | None, digest: str | None
) -> None:
    parsed = parse_reference(ref)
    assert (parsed.repository, parsed.tag, parsed.digest) == (repository, tag, digest)


@pytest.mark.parametrize("ref", ["", "   ", "has space:v1", "registry:5000/"])
def test_bad_references_are_usage_errors(ref: str) -> None:
    with pytest.raises(UsageError):
        parse_reference(ref)


@pytest.mark.parametrize(
    ("ref", "unpinned"),
    [
        ("busybox", True),
        ("busybox:latest", True),
        ("127.0.0.1:5000/img", True),  # the port is not a tag
        ("127.0.0.1:5000/img:v1", False),
        ("img@sha256:" + "d" * 64, False),
        (pinned_image(), False),
    ],
)
def test_unpinned_references_warn(ref: str, unpinned: bool) -> None:
    warnings = ImageChoice(ref, "--image").warnings()
    assert bool(warnings) is unpinned
    if unpinned:
        assert "not pinned" in warnings[0] and pinned_image() in warnings[0]


def test_the_local_dev_image_never_warns_as_unpinned() -> None:
    assert ImageChoice(DEV_IMAGE, "--use-local-image").warnings() == []


@pytest.mark.parametrize(
    ("label", "status"),
    [
        (__version__, "match"),
        (f"v{__version__}", "match"),
        ("0.0.1", "differs"),
        ("99.0.0rc1", "differs"),
        (None, "unknown"),
        ("", "unknown"),
        ("unknown", "unknown"),
        ("not-a-version", "unknown"),
    ],
)
def test_version_verdicts(label: str | None, status: str) -> None:
    verdict = version_match(label)
    assert verdict.status == status
    warning = verdict.warning("image x")
    assert (warning is None) is (status == "match")
    if status == "differs":
        assert warning is not None
        assert label in warning[0] and __version__ in warning[0]
        assert "roscoe image pull" in warning[1] and "make build-image" in warning[1]


def test_choice_order_flag_env_local_config_pinned(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('image = "from-config:v1"\n')
    env = {"ROSCOE_RUNNER_IMAGE": "from-env:v1"}
    with_all = Settings(env=env, config_path=config)
    assert choose_image(with_all, "flag:v1", True) == ImageChoice("flag:v1", "--image")
    chosen = choose_image(with_all, None, True)
    assert (chosen.ref, chosen.source) == ("from-env:v1", "env ROSCOE_RUNNER_IMAGE")
    no_env = Settings(env={}, config_path=config)
    assert choose_image(no_env, None, True) == ImageChoice(DEV_IMAGE, "--use-local-image")
    assert choose_image(no_env).ref == "from-config:v1"
    nothing = Settings(env={}, config_path=tmp_path / "absent.toml")
    assert choose_image(nothing) == ImageChoice(pinned_image(), "pinned")


@pytest.mark.parametrize(
    ("flag", "env"),
    [
        ("Bad Ref!!", {}),
        ("BadRef!!", {}),
        ("", {}),
        ("   ", {}),
        ("UPPER:v1", {}),
        ("reg:5000/", {}),
        (None, {"ROSCOE_RUNNER_IMAGE": "no good!"}),
    ],
)
def test_a_bad_or_empty_reference_is_exit_2(
    tmp_path: Path, flag: str | None, env: dict[str, str]
) -> None:
    settings = Settings(env=env, config_path=tmp_path / "absent.toml")
    with pytest.raises(UsageError) as caught:
        choose_image(settings, flag)
    assert caught.value.exit_code == 2
    assert "not an image reference" in caught.value.message


@pytest.mark.parametrize(
    "ref",
    [
        "roscoe-base:bookworm",
        "127.0.0.1:5000/team/img:v1",
        "ghcr.io/roscoe-cli/roscoe-runner:v0.1.0",
        "localhost:5000/a/b@sha256:" + "a" * 64,
        "busybox",
        "my_repo/some-name.x:Tag_1.2-rc",
    ],
)
def test_good_references_are_chosen_as_given(tmp_path: Path, ref: str) -> None:
    settings = Settings(env={}, config_path=tmp_path / "absent.toml")
    assert choose_image(settings, ref) == ImageChoice(ref, "--image")


def inspect_data(version: str | None = __version__) -> dict[str, Any]:
    labels = {OCI_VERSION_LABEL: version} if version else {}
    return {
        "Id": "sha256:" + "e" * 64,
        "RepoDigests": [
            "127.0.0.1:5000/other@sha256:" + "1" * 64,
            "ghcr.io/roscoe-cli/roscoe-runner@sha256:" + "2" * 64,
        ],
        "Config": {"Labels": labels},
    }


def fake(*published: str) -> FakeEngine:
    """The fake engine; the references given can be pulled from its registry."""
    engine = FakeEngine(kind="fake")
    for ref in published:
        engine.registry[ref] = Published(
            events=[{"status": "Status: Downloaded newer image"}], image=inspect_data()
        )
    return engine


def pulls(engine: FakeEngine) -> list[str | None]:
    return [call.target for call in engine.calls if call.method == "pull_stream"]


def test_a_present_image_is_used_without_any_pull() -> None:
    engine = fake(pinned_image())
    engine.add_image(pinned_image(), data=inspect_data())
    status = ensure_image(engine, ImageChoice(pinned_image(), "pinned"))
    assert pulls(engine) == []
    assert status.present and not status.pulled
    assert status.version == __version__ and status.version_match.ok
    # The digest of this reference's repository, not another registry's.
    assert status.digest == "ghcr.io/roscoe-cli/roscoe-runner@sha256:" + "2" * 64
    assert status.warnings == []


def test_missing_image_is_pulled_under_the_default_policy() -> None:
    engine = fake("127.0.0.1:5000/team/img:v1")
    choice = ImageChoice("127.0.0.1:5000/team/img:v1", "--image")
    status = ensure_image(engine, choice)
    assert pulls(engine) == ["127.0.0.1:5000/team/img:v1"]
    assert status.pulled and status.present


def test_always_pulls_even_when_present_but_never_the_local_dev_image() -> None:
    engine = fake("img:v1", DEV_IMAGE)
    engine.add_image("img:v1", data=inspect_data())
    ensure_image(engine, ImageChoice("img:v1", "--image"), "always")
    assert pulls(engine) == ["img:v1"]
    engine.add_image(DEV_IMAGE, data=inspect_data())
    status = ensure_image(engine, ImageChoice(DEV_IMAGE, "--use-local-image"), "always")
    assert pulls(engine) == ["img:v1"]
    assert not status.pulled


def test_never_with_an_absent_image_is_exit_4_with_a_hint() -> None:
    engine = fake("img:v1")
    with pytest.raises(ImageError) as caught:
        ensure_image(engine, ImageChoice("img:v1", "--image"), "never")
    assert caught.value.exit_code == 4
    assert "--pull never" in caught.value.message
    assert caught.value.hint is not None and "roscoe image pull" in caught.value.hint
    assert pulls(engine) == []


def test_absent_local_dev_image_is_exit_4_and_never_pulled() -> None:
    engine = fake(DEV_IMAGE)
    with pytest.raises(ImageError) as caught:
        ensure_image(engine, ImageChoice(DEV_IMAGE, "--use-local-image"))
    assert caught.value.hint is not None and "make build-image" in caught.value.hint
    assert pulls(engine) == []


def test_an_unknown_pull_policy_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        ensure_image(fake("img:v1"), ImageChoice("img:v1", "--image"), "sometimes")


def test_status_warns_about_a_version_that_differs_and_an_unpinned_reference() -> None:
    engine = fake()
    engine.add_image("img", data=inspect_data("0.0.1"))
    status = image_status(engine, ImageChoice("img", "--image"))
    messages = [message for message, _ in status.warnings]
    assert any("not pinned" in m for m in messages)
    assert any("0.0.1" in m and __version__ in m for m in messages)
    data = status.to_json()
    assert data["version_match"] == "differs"
    assert data["digest"] is None  # RepoDigests name other repositories
    assert set(data) >= {"ref", "source", "present", "image_id", "digest", "version"}
