"""Inputs a storyboard names by URL (a first frame at `https://...`), downloaded once.

    inputs/ab/<sha256 of the URL>        the bytes as they were downloaded
    inputs/ab/<sha256 of the URL>.json   the URL, and the bytes' checksum and size

A shot's key follows the bytes, not the URL: once fetched, an input is read from here, so a
storyboard renders what it rendered even if the file behind the URL changes. Only https; at
most MAX_BYTES; and, unless STORYBOARD_ALLOW_PRIVATE_URLS=1, only hosts on the public
internet (a storyboard from elsewhere must not make a CI runner read its private network).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from pipeline.cache.files import record_of, write_atomic
from pipeline.hashing import sha256_bytes, sha256_text

if TYPE_CHECKING:
    import httpx

MAX_BYTES = 20 * 1024 * 1024  # the largest first frame a model takes
TIMEOUT = 10.0  # one read or connect
# The whole fetch (every redirect, its headers and body): a server that trickles is given up
# on in a time a person waits for a plan. 20 MB, the largest frame, needs 1 MB a second.
DEADLINE = 20.0
MAX_REDIRECTS = 5
PRIVATE_ENV = "STORYBOARD_ALLOW_PRIVATE_URLS"  # read by the command (settings.Environment)


class FetchError(Exception):
    """An input that could not be downloaded; the message says why, for a located error."""


class Fetched(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    url: str
    sha256: str
    bytes: int
    fetched: float


class FetchedInputs:
    def __init__(self, folder: Path, private: bool = False) -> None:
        self.folder = folder
        self.private = private  # hosts on private networks may be read (PRIVATE_ENV)

    def path(self, url: str) -> Path:
        """Where the bytes of `url` are kept, fetching them the first time."""
        name = sha256_text(url)
        target = self.folder / name[:2] / name
        record = record_of(target.with_suffix(".json"), target, Fetched)
        if record is not None and record.url == url:
            return target
        data = download(url, self.private)
        try:
            write_atomic(target, data)
            entry = Fetched(
                url=url, sha256=sha256_bytes(data), bytes=len(data), fetched=time.time()
            )
            write_atomic(target.with_suffix(".json"), entry.model_dump_json())
        except OSError as exc:
            raise FetchError(f"could not be kept in the cache ({exc.strerror or exc})") from None
        return target


def download(url: str, private: bool = False) -> bytes:
    """The bytes at an https URL, within the limits above: the whole fetch (every redirect,
    the headers and the body) within DEADLINE seconds, no content coding, and each host
    connected to at an address that was checked (the name is resolved once, here, and that
    address connected to: a name that answers a public address, then a private one, cannot
    slip through between the check and the connection)."""
    import asyncio  # here: planning a storyboard without URLs never loads it

    try:
        return asyncio.run(_download(url, private))
    except TimeoutError:
        raise FetchError(
            f"could not be downloaded within {DEADLINE:g} s (the server is too slow)"
        ) from None


async def _download(url: str, private: bool) -> bytes:
    import asyncio

    import httpx

    current = _parsed(url)
    headers = {"Accept-Encoding": "identity"}
    async with (
        asyncio.timeout(DEADLINE),
        httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False) as client,
    ):
        for _ in range(MAX_REDIRECTS + 1):
            address = _checked_address(current, await _addresses(current), private)
            request = client.build_request(
                "GET",
                current.copy_with(host=address),
                headers={**headers, "Host": _host_header(current)},
                extensions={"sni_hostname": current.host},
            )
            try:
                response = await client.send(request, stream=True)
                try:
                    if response.is_redirect:
                        current = _parsed(str(current.join(response.headers.get("Location", ""))))
                        continue
                    if response.status_code != 200:
                        raise FetchError(f"could not be downloaded: HTTP {response.status_code}")
                    return await _read(response)
                finally:
                    await response.aclose()
            except httpx.HTTPError as exc:
                raise FetchError(f"could not be downloaded ({type(exc).__name__}: {exc})") from None
    raise FetchError(f"could not be downloaded: more than {MAX_REDIRECTS} redirects")


def _parsed(url: str) -> httpx.URL:
    import httpx

    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as exc:
        raise FetchError(f"is not a URL that can be read ({exc})") from None
    if parsed.scheme != "https":
        raise FetchError("is not an https:// URL: only https inputs are downloaded")
    if not parsed.host:
        raise FetchError("is not a URL that can be read (no host)")
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise FetchError(f"is not a URL that can be read (port {parsed.port})")
    return parsed


def _host_header(url: httpx.URL) -> str:
    host = f"[{url.host}]" if ":" in url.host else url.host
    return host if url.port in (None, 443) else f"{host}:{url.port}"


async def _read(response: httpx.Response) -> bytes:
    coding = response.headers.get("Content-Encoding", "identity").strip().lower()
    if coding not in ("", "identity"):
        raise FetchError(
            f"was sent with Content-Encoding: {coding}: an image needs none, so it is not read "
            "(a compressed body can inflate to gigabytes)"
        )
    length = response.headers.get("Content-Length", "")
    declared = int(length) if length.isdigit() else 0  # else counted as it comes
    if declared > MAX_BYTES:
        raise FetchError(f"is {declared:,} bytes, over the {MAX_BYTES:,} a first frame may be")
    chunks, size = [], 0
    async for chunk in response.aiter_raw(1 << 16):
        size += len(chunk)
        if size > MAX_BYTES:
            raise FetchError(f"is over the {MAX_BYTES:,} bytes a first frame may be")
        chunks.append(chunk)
    return b"".join(chunks)


async def _addresses(url: httpx.URL) -> list[str]:
    """The addresses `url`'s host resolves to (looked up in a thread: the fetch's deadline
    covers a name server that is slow to answer)."""
    import asyncio
    import socket

    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            url.host, url.port or 443, type=socket.SOCK_STREAM
        )
    except (socket.gaierror, UnicodeError, OSError) as exc:
        raise FetchError(f"names a host that cannot be found ({exc})") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _checked_address(url: httpx.URL, addresses: list[str], private: bool) -> str:
    """The address to connect to for `url`'s host: the first it resolves to, once every one
    is on the public internet (unless private hosts are allowed)."""
    import ipaddress

    if not addresses:
        raise FetchError("names a host that cannot be found")
    if not private:
        for address in addresses:
            if not ipaddress.ip_address(address.split("%")[0]).is_global:
                raise FetchError(
                    f"names a host on a private network ({url.host} is {address}): not "
                    f"downloaded (set {PRIVATE_ENV}=1 to allow it)"
                )
    return addresses[0]
