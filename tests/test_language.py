"""The storyboard language a team needs: models in a matrix, includes, Unicode names, and
first frames by https URL."""

from __future__ import annotations

import contextlib
import functools
import gzip
import http.server
import json
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tests.conftest import REPO, write

HEAD = "version: 1\nname: t\n"


def plan(cli, spec: Path, *args: str) -> dict:
    result = cli("plan", spec, "--json", *args)
    assert result.code == 0, result.err
    return json.loads(result.out)


def test_a_matrix_over_two_models(project: Path, cli) -> None:
    spec = write(
        project / "specs" / "models.yaml",
        HEAD
        + "defaults: {resolution: 768p, duration: 6, first_frame: assets/raincoat.jpg}\n"
        + "matrix: {model: ['minimax:4@1', 'minimax:4@2']}\n"
        + "shots:\n  - id: coat\n    prompt: the raincoat turns in the wind\n",
    )
    rows = {row["variants"][0]: row for row in plan(cli, spec)["shots"]}
    assert {v: (r["model"], r["price"]) for v, r in rows.items()} == {
        "minimax-4-1": ("minimax:4@1", 0.28),
        "minimax-4-2": ("minimax:4@2", 0.24),
    }
    table = cli("plan", spec).out
    assert "minimax:4@1" in table and "minimax:4@2" in table


def test_a_templated_model_is_checked_in_each_variant(project: Path, cli) -> None:
    spec = write(
        project / "specs" / "models.yaml",
        HEAD
        + "matrix: {speed: [full, fast]}\n"
        + "vars: {models: {full: 'minimax:4@1', fast: 'minimax:4@2'}}\n"
        + "shots:\n  - id: sea\n    prompt: a grey sea\n    model: '{{ models[speed] }}'\n",
    )
    result = cli("plan", spec)
    assert result.code == 2
    # The fast variant's model takes no text-only shot: the error names the shot and model.
    assert result.err.startswith(f"{spec}:6:5: shot 'sea': minimax:4@2 is image-to-video only")


def test_includes_merge_and_errors_point_into_the_included_file(project: Path, cli) -> None:
    write(
        project / "specs" / "shared" / "base.yaml",
        "defaults: {resolution: 768p, duration: 6}\n"
        "vars: {place: a harbour, look: soft grain}\n"
        "shots:\n  - id: library\n    prompt: '{{ place }} at dawn, {{ look }}'\n",
    )
    spec = write(
        project / "specs" / "main.yaml",
        HEAD
        + "include: [shared/base.yaml]\n"
        + "vars: {place: a quay}\n"
        + "shots:\n  - id: own\n    prompt: 'a gull over {{ place }}'\n"
        + "sequences:\n  - {id: reel, shots: [library, own]}\n",
    )
    prompts = {row["shot"]: row["prompt"] for row in json.loads(cli("prompts", spec, "--json").out)}
    assert prompts == {"library": "a quay at dawn, soft grain", "own": "a gull over a quay"}
    base = project / "specs" / "shared" / "base.yaml"
    write(base, base.read_text().replace("duration: 6", "duration: 10, fps: 30"))
    result = cli("plan", spec)
    assert result.code == 2
    assert result.err.startswith(
        f"{base}:1:49: shots 'library' and 'own': minimax:4@1 renders at 25 fps only, not 30"
    ), result.err
    write(base, "include: ../main.yaml\n" + base.read_text())
    result = cli("plan", spec)
    assert result.err.startswith(
        f"{base}:1:10: include: a loop (main.yaml -> base.yaml -> main.yaml)"
    )
    write(base, "include: ../../../outside.yaml\n")
    assert "include: '../../../outside.yaml' is outside the project" in cli("plan", spec).err


def test_a_unicode_name_builds_into_a_safe_folder(project: Path, cli) -> None:
    spec = write(
        project / "specs" / "cafe.yaml",
        "version: 1\nname: café 広告\nshots:\n  - id: a\n    prompt: a cup of coffee\n"
        "sequences:\n  - {id: reel, shots: [a]}\n",
    )
    assert cli("build", spec, "--preview", "-q").code == 0
    assert (project / "build" / "cafe" / "preview" / "reel.mp4").is_file()
    lock = json.loads((project / "specs" / "cafe.preview.lock").read_text())
    assert lock["storyboard"] == "café 広告"


class QuietFiles(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return None


@contextlib.contextmanager
def serving_https(
    folder: Path, handler: Any, names: str
) -> Iterator[tuple[http.server.ThreadingHTTPServer, Path]]:
    """An https server on loopback, with a certificate made for `names` (a subjectAltName):
    the server and the certificate to trust."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=storyboard-test",
         "-addext", f"subjectAltName={names}"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, cert
    finally:
        server.shutdown()


@pytest.fixture(scope="module")
def https_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, Path]]:
    """An https server of files on loopback: (base URL, its folder, the certificate to
    trust)."""
    folder = tmp_path_factory.mktemp("https")
    served = folder / "www"
    served.mkdir()
    handler = functools.partial(QuietFiles, directory=str(served))
    with serving_https(folder, handler, "IP:127.0.0.1") as (server, cert):
        yield f"https://127.0.0.1:{server.server_address[1]}", served, cert


def test_a_first_frame_by_url_is_fetched_once_and_keyed_by_its_bytes(
    project: Path, cli, https_server: tuple[str, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, served, cert = https_server
    shutil.copy(REPO / "specs" / "assets" / "raincoat.jpg", served / "frame.jpg")
    spec = write(
        project / "specs" / "url.yaml",
        HEAD
        + f"shots:\n  - id: coat\n    prompt: the coat turns\n    first_frame: {url}/frame.jpg\n",
    )
    refused = cli("plan", spec)
    assert refused.code == 2
    assert "names a host on a private network (127.0.0.1 is 127.0.0.1)" in refused.err
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    monkeypatch.setenv("STORYBOARD_ALLOW_PRIVATE_URLS", "1")
    local = write(
        project / "specs" / "local.yaml",
        HEAD
        + "shots:\n  - id: coat\n    prompt: the coat turns\n    first_frame: assets/raincoat.jpg\n",
    )
    key = plan(cli, spec)["shots"][0]["key"]
    assert key == plan(cli, local)["shots"][0]["key"]  # the same bytes, the same render
    shutil.copy(REPO / "specs" / "assets" / "luthier.jpg", served / "frame.jpg")
    assert plan(cli, spec)["shots"][0]["key"] == key  # fetched once: kept in the cache
    write(spec, spec.read_text().replace("frame.jpg", "gone.jpg"))
    missing = cli("plan", spec)
    assert missing.code == 2
    assert missing.err.startswith(
        f"{spec}:6:18: '{url}/gone.jpg' could not be downloaded: HTTP 404"
    )
    write(spec, spec.read_text().replace("https://", "http://"))
    assert "only a frame image may be a URL, and only https://" in cli("plan", spec).err


class Hostile(http.server.BaseHTTPRequestHandler):
    """A server that answers as a hostile one would: a body in two layers of gzip, headers
    a byte at a time; and counts what it is asked for."""

    protocol_version = "HTTP/1.1"
    asked: ClassVar[list[str]] = []

    def log_message(self, format: str, *args: object) -> None:
        return None

    def do_GET(self) -> None:
        Hostile.asked.append(self.path)
        image = (REPO / "specs" / "assets" / "raincoat.jpg").read_bytes()
        if self.path == "/gzip2.jpg":
            body = gzip.compress(gzip.compress(image))
            self._send(body, {"Content-Encoding": "gzip, gzip"})
        elif self.path == "/slow.jpg":
            for byte in b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\n":
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.05)
        else:
            self._send(image, {})

    def _send(self, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def hostile_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """The hostile server on loopback, with a certificate for `rebind.test` and 127.0.0.1:
    (its port, the certificate to trust)."""
    folder = tmp_path_factory.mktemp("hostile-https")
    with serving_https(folder, Hostile, "DNS:rebind.test,IP:127.0.0.1") as (server, cert):
        yield server.server_address[1], cert


def _url_spec(project: Path, url: str) -> Path:
    return write(
        project / "specs" / "url.yaml",
        HEAD + f"shots:\n  - id: coat\n    prompt: the coat turns\n    first_frame: {url}\n",
    )


def test_an_image_sent_compressed_is_refused_unread(
    project: Path, cli, hostile_server: tuple[int, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, cert = hostile_server
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    monkeypatch.setenv("STORYBOARD_ALLOW_PRIVATE_URLS", "1")
    result = cli("plan", _url_spec(project, f"https://127.0.0.1:{port}/gzip2.jpg"))
    assert result.code == 2
    assert "was sent with Content-Encoding: gzip, gzip: an image needs none" in result.err
    assert "Traceback" not in result.err and len(result.err.splitlines()) == 1


def test_a_server_that_sends_a_byte_at_a_time_is_given_up_at_the_deadline(
    project: Path, cli, hostile_server: tuple[int, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.cache import inputs

    port, cert = hostile_server
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    monkeypatch.setenv("STORYBOARD_ALLOW_PRIVATE_URLS", "1")
    monkeypatch.setattr(inputs, "DEADLINE", 1.0)  # 20 s for a person; each read is quick
    result = cli("plan", _url_spec(project, f"https://127.0.0.1:{port}/slow.jpg"))
    assert result.code == 2
    assert "could not be downloaded within 1 s (the server is too slow)" in result.err


def test_a_name_that_turns_private_after_the_check_is_not_downloaded_from(
    project: Path, cli, hostile_server: tuple[int, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: `rebind.test` answers a public address when it is checked and loopback
    after. The address checked is the one connected to, so loopback is never asked."""
    import socket

    from pipeline.cache import inputs

    port, cert = hostile_server
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    monkeypatch.setattr(inputs, "TIMEOUT", 1.0)  # the public address cannot be reached here
    real = socket.getaddrinfo
    answers = iter(["93.184.216.34"])

    def rebinding(host: object, *args: object, **kwargs: object) -> list:
        if host == "rebind.test":
            address = next(answers, "127.0.0.1")
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]
        return real(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    Hostile.asked.clear()
    spec = _url_spec(project, f"https://rebind.test:{port}/frame.jpg")
    result = cli("plan", spec)
    assert result.code == 2 and "could not be downloaded" in result.err, result.err
    assert Hostile.asked == []  # loopback was never asked for anything
    # Connected by address, the name still checks the certificate: allowed, it is fetched.
    monkeypatch.setenv("STORYBOARD_ALLOW_PRIVATE_URLS", "1")
    assert cli("plan", spec).code == 0
    assert Hostile.asked == ["/frame.jpg"]


def test_a_file_included_many_times_is_parsed_once(
    project: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline import spec as spec_module

    write(project / "specs" / "shared" / "looks.yaml", "vars: {look: soft grain}\n")
    write(project / "specs" / "shared" / "a.yaml", "include: looks.yaml\nvars: {a: 1}\n")
    write(project / "specs" / "shared" / "b.yaml", "include: looks.yaml\nvars: {b: 2}\n")
    spec = write(
        project / "specs" / "main.yaml",
        HEAD
        + "include: [shared/a.yaml, shared/b.yaml, shared/looks.yaml, shared/looks.yaml]\n"
        + "shots:\n  - id: own\n    prompt: 'a gull, {{ look }}'\n",
    )
    parsed: list[str] = []
    real = spec_module.reading.parse

    def counting(path: Path, texts: dict, given: str | None = None) -> object:
        parsed.append(Path(path).name)
        return real(path, texts, given)

    monkeypatch.setattr(spec_module.reading, "parse", counting)
    prompts = json.loads(cli("prompts", spec, "--json").out)
    assert prompts[0]["prompt"] == "a gull, soft grain"
    assert sorted(parsed) == ["a.yaml", "b.yaml", "looks.yaml", "main.yaml"]
