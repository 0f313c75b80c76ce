"""What a command is asked to do, as grouped settings (as Snakemake's API takes them): the
environment, read once at the edge (cli, api) and handed down; which storyboard and build a
command looks at; which films and renders a build works on. No library module reads the
environment itself.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

CACHE_ENV = "STORYBOARD_CACHE_DIR"
PRIVATE_URLS_ENV = "STORYBOARD_ALLOW_PRIVATE_URLS"
CLUSTER_ENV = "STORYBOARD_CLUSTER"
REMOTE_ENV = "STORYBOARD_REMOTE"
NO_REMOTE_ENV = "STORYBOARD_NO_REMOTE"
LEASE_ENV = "STORYBOARD_LEASE_SECONDS"
ENDPOINT_ENVS = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")


@dataclass(frozen=True)
class RemoteEnvironment:
    """What the environment says of the team cache: it overrides the project's settings."""

    url: str | None = None  # STORYBOARD_REMOTE
    lease_seconds: str | None = None  # STORYBOARD_LEASE_SECONDS
    off: bool = False  # STORYBOARD_NO_REMOTE=1
    endpoint: str | None = None  # AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL


@dataclass(frozen=True)
class Environment:
    """The variables storyboard reads, read once (`read`), by the command line or the API."""

    cache_dir: str | None = None  # STORYBOARD_CACHE_DIR
    private_urls: bool = False  # STORYBOARD_ALLOW_PRIVATE_URLS=1: inputs from private hosts
    cluster: str | None = None  # STORYBOARD_CLUSTER
    remote: RemoteEnvironment = field(default_factory=RemoteEnvironment)

    @classmethod
    def read(cls, environ: Mapping[str, str] | None = None) -> Environment:
        given = os.environ if environ is None else environ

        def value(name: str) -> str | None:
            return given.get(name) or None

        endpoint = next((given[name] for name in ENDPOINT_ENVS if given.get(name)), None)
        return cls(
            cache_dir=value(CACHE_ENV),
            private_urls=given.get(PRIVATE_URLS_ENV) == "1",
            cluster=value(CLUSTER_ENV),
            remote=RemoteEnvironment(
                url=value(REMOTE_ENV),
                lease_seconds=value(LEASE_ENV),
                off=given.get(NO_REMOTE_ENV, "") not in ("", "0"),
                endpoint=endpoint,
            ),
        )


@dataclass(frozen=True)
class Target:
    """Which storyboard a command looks at, for which build (preview or paid), with which
    cache and film folder: everything planning it needs."""

    spec: Path
    preview: bool = False
    cache_dir: str | None = None  # None: the environment's, else the project's .storyboard/
    output_dir: Path | None = None  # None: build/ at the project root
    max_shots: int | None = None  # None: expand.MAX_SHOTS
    remote: bool = True  # use the project's team cache, when it has one
    environment: Environment = field(default_factory=Environment)

    @property
    def cache_override(self) -> str | None:
        """The cache folder asked for: on the command line, else in the environment."""
        return self.cache_dir or self.environment.cache_dir


@dataclass(frozen=True)
class Selection:
    """Which films and renders a build works on."""

    sequences: tuple[str, ...] = ()  # the films of these sequences (all when none)
    only: tuple[str, ...] = ()  # these shots alone (and what they start from)
    force: tuple[str, ...] = ()  # rendered again, whatever they are
    approved: bool = False  # only the films whose shots are all approved (decisions file)
    join_only: bool = False  # render nothing: join the films whose renders are all here
