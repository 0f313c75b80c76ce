"""Inputs a storyboard names by URL (a first frame at `https://...`), downloaded once.

    inputs/ab/<sha256 of the URL>        the bytes as they were downloaded
    inputs/ab/<sha256 of the URL>.json   the URL, and the bytes' checksum and size

A shot's key follows the bytes, not the URL: once fetched, an input is read from here, so a
storyboard renders what it rendered even if the file behind the URL changes. Only https; at
most MAX_BYTES; and, unless STORYBOARD_ALLOW_PRIVATE_URLS=1, only hosts on the public
internet (a storyboard from elsewhere must not make a CI runner read its private network).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from pipeline.cache.files import record_of, write_atomic
from pipeline.hashing import sha256_bytes, sha256_text

if TYPE_CHECKING:
    import httpx

MAX_BYTES = 20 * 1024 * 1024  # the largest first frame a model takes
TIMEOUT = 30.0
MAX_REDIRECTS = 5
PRIVATE_ENV = "STORYBOARD_ALLOW_PRIVATE_URLS"


class FetchError(Exception):
    """An input that could not be downloaded; the message says why, for a located error."""


class Fetched(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    url: str
    sha256: str
    bytes: int
    fetched: float


class FetchedInputs:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, url: str) -> Path:
        """Where the bytes of `url` are kept, fetching them the first time."""
        name = sha256_text(url)
        target = self.folder / name[:2] / name
        record = record_of(target.with_suffix(".json"), target, Fetched)
        if record is not None and record.url == url:
            return target
        data = download(url)
        try:
            write_atomic(target, data)
            entry = Fetched(
                url=url, sha256=sha256_bytes(data), bytes=len(data), fetched=time.time()
            )
            write_atomic(target.with_suffix(".json"), entry.model_dump_json())
        except OSError as exc:
            raise FetchError(f"could not be kept in the cache ({exc.strerror or exc})") from None
        return target


def download(url: str) -> bytes:
    """The bytes at an https URL, within the limits above."""
    import httpx  # here: planning a storyboard without URLs never loads it

    current = httpx.URL(url)
    with httpx.Client(timeout=TIMEOUT, follow_redirects=False) as client:
        for _ in range(MAX_REDIRECTS + 1):
            _check_url(current)
            try:
                with client.stream("GET", current) as response:
                    if response.is_redirect:
                        current = current.join(response.headers.get("Location", ""))
                        continue
                    if response.status_code != 200:
                        raise FetchError(f"could not be downloaded: HTTP {response.status_code}")
                    return _read(response)
            except httpx.HTTPError as exc:
                raise FetchError(f"could not be downloaded ({type(exc).__name__}: {exc})") from None
    raise FetchError(f"could not be downloaded: more than {MAX_REDIRECTS} redirects")


def _read(response: httpx.Response) -> bytes:
    declared = int(response.headers.get("Content-Length") or 0)
    if declared > MAX_BYTES:
        raise FetchError(f"is {declared:,} bytes, over the {MAX_BYTES:,} a first frame may be")
    chunks, size = [], 0
    for chunk in response.iter_bytes(1 << 16):
        size += len(chunk)
        if size > MAX_BYTES:
            raise FetchError(f"is over the {MAX_BYTES:,} bytes a first frame may be")
        chunks.append(chunk)
    return b"".join(chunks)


def _check_url(url: httpx.URL) -> None:
    """https only, to a host on the public internet (unless private hosts are allowed)."""
    import ipaddress
    import socket

    if url.scheme != "https":
        raise FetchError("is not an https:// URL: only https inputs are downloaded")
    if os.environ.get(PRIVATE_ENV) == "1":
        return
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(url.host, url.port or 443)}
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchError(f"names a host that cannot be found ({exc})") from None
    for address in addresses:
        if not ipaddress.ip_address(address.split("%")[0]).is_global:
            raise FetchError(
                f"names a host on a private network ({url.host} is {address}): not downloaded "
                f"(set {PRIVATE_ENV}=1 to allow it)"
            )
