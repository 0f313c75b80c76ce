"""The storyboard language a team needs: models in a matrix, includes, Unicode names, and
first frames by https URL."""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

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
        f"{base}:1:49: shot 'library': minimax:4@1 renders at 25 fps only, not 30"
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


@pytest.fixture(scope="module")
def https_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, Path]]:
    """An https server on loopback with a certificate made for it: (base URL, its folder,
    the certificate to trust)."""
    folder = tmp_path_factory.mktemp("https")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    served = folder / "www"
    served.mkdir()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(QuietFiles, directory=str(served))
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}", served, cert
    server.shutdown()


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
