"""Where the team cache is: `[remote]` of the project's storyboard.toml (or pyproject.toml),
or the environment, read and checked without loading the client (obstore, asyncio): a plan
of a project without a team cache never pays for them.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pipeline.errors import SpecError, StoryboardError, UserError, message_of
from pipeline.project import MAX_SETTINGS_BYTES, OutsideProject, ProjectSettings, read_bounded
from pipeline.settings import LEASE_ENV, REMOTE_ENV, RemoteEnvironment

INSTALL_HINT = "install the team extra: pip install 'storyboard[remote]'"

# S3's rules for a bucket name (3 to 63 lowercase letters, digits, dots and hyphens, starting
# and ending with a letter or digit), and the segments of a prefix: never empty, . or ..
BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
SEGMENT = re.compile(r"^[^\x00-\x1f\x7f]+$")


class RemoteSettings(BaseModel):
    """Where the team cache is, as `storyboard.toml` ([remote]) or the environment says."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str  # s3://bucket/prefix
    endpoint: str | None = None  # else AWS_ENDPOINT_URL, else AWS itself
    region: str | None = None  # else AWS_REGION
    push: bool = True  # upload what this machine renders and joins
    # A lease is renewed every third of this: a shorter period leaves no time for a renewal
    # to cross the network, and every other machine would take the holder's shots over.
    lease_seconds: float = Field(120.0, ge=2, le=3600, allow_inf_nan=False)
    concurrency: int = Field(16, ge=1, le=256)  # transfers at once

    @field_validator("url")
    @classmethod
    def _s3_address(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError(
                f"'{url}' is not an S3 address: give s3://bucket or s3://bucket/prefix (any "
                "S3-compatible store: set AWS_ENDPOINT_URL for MinIO, R2, SeaweedFS or Ceph)"
            )
        if not BUCKET.match(parts.netloc) or ".." in parts.netloc:
            raise ValueError(
                f"'{parts.netloc}' is not a bucket name: 3 to 63 lowercase letters, digits, "
                "dots and hyphens"
            )
        prefix = parts.path.strip("/")
        segments = prefix.split("/") if prefix else []
        if (
            parts.query
            or parts.fragment
            or any(part in ("", ".", "..") or not SEGMENT.match(part) for part in segments)
        ):
            raise ValueError(
                f"'{parts.path}' is not a prefix: folders separated by /, none empty, . or .."
            )
        return url

    @property
    def bucket(self) -> str:
        return urlsplit(self.url).netloc

    @property
    def prefix(self) -> str:
        return urlsplit(self.url).path.strip("/")


def remote_settings(
    project: ProjectSettings, environment: RemoteEnvironment | None = None
) -> RemoteSettings | None:
    """The project's team cache (from its settings, as `project_settings` read them), or
    None. The environment (as the command read it) overrides: `STORYBOARD_REMOTE` the
    file's url, `STORYBOARD_NO_REMOTE=1` turns the remote off, AWS_ENDPOINT_URL is the
    endpoint when the file gives none. A bad setting is a located error naming the file (or
    the variable), the line and the field."""
    environment = environment or RemoteEnvironment()
    if environment.off:
        return None
    settings, path = project
    table = settings.get("remote", {})
    if not isinstance(table, dict):
        raise _setting_error(path, "remote", "[remote] must be a table: url = 's3://...'")
    given = {name: path for name in table}
    table = {name: value for name, value in table.items() if name != "cluster"}  # ignored
    for name, value in (("url", environment.url), ("lease_seconds", environment.lease_seconds)):
        if value:
            table[name] = value
            given[name] = None
    if not table.get("url"):
        if table:
            raise _setting_error(path, "remote", "[remote]: `url` is missing")
        return None
    if environment.endpoint and not table.get("endpoint"):
        table["endpoint"] = environment.endpoint
    try:
        return RemoteSettings.model_validate(table)
    except ValidationError as exc:
        problem = exc.errors(include_url=False)[0]
        name = ".".join(str(p) for p in problem["loc"]) or "remote"
        message = message_of(problem)
        source = given.get(name, path)
        if source is None:  # an environment variable's value
            variable = REMOTE_ENV if name == "url" else LEASE_ENV
            raise UserError(f"{variable}: {message}") from None
        raise _setting_error(source, name, f"[remote] {name}: {message}") from None


def _setting_error(path: Path | None, key: str, message: str) -> StoryboardError:
    """A bad setting, at the line of the settings file where its key is written."""
    if path is None:
        return UserError(message)
    return SpecError(path, _line_of(path, key), 1, message)


def _line_of(path: Path, key: str) -> int:
    """The line of a settings file where `key` is set (or its table starts), else 1."""
    with contextlib.suppress(OutsideProject, UnicodeDecodeError):
        text = read_bounded(path, MAX_SETTINGS_BYTES).decode("utf-8")
        pattern = re.compile(rf"^\s*(\[\s*)?{re.escape(key)}\b")
        for number, line in enumerate(text.splitlines(), start=1):
            if pattern.match(line):
                return number
    return 1
