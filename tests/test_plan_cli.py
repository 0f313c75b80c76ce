"""`storyboard plan` and `storyboard prompts` on the bundled examples."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.cache import Cache


def test_plan_json_totals_and_costs(project: Path, cli) -> None:
    result = cli("plan", "specs/ballroom.yaml", "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    totals = data["totals"]
    # 4 shots in two lights; glove has 2 takes and is one render both lights share.
    assert totals["shots"] == 8
    assert totals["unique_renders"] == 8
    assert totals["renders_needed"] == 8
    assert totals["cost_needed"] == round(4 * 0.49 + 2 * 0.56 + 2 * 0.28, 2)
    glove = [row for row in data["shots"] if row["shot"] == "glove"]
    assert [g["variants"] for g in glove] == [["pale-morning", "golden-dusk"]] * 2
    teaser = next(s for s in data["sequences"] if s["name"] == "teaser--golden-dusk")
    assert teaser["duration"] == 17.0


def test_plan_table_for_people(project: Path, cli) -> None:
    result = cli("plan", "specs/airship.yaml")
    assert result.code == 0
    assert "crew@copper-airship" in result.out
    assert (
        "12 shots in 3 variants, 10 unique renders (a render variants share is one), 10 to render"
        in result.out
    )
    assert "$4.27" in result.out
    assert "arrival--amber-sunset-rust-red" in result.out


def test_plan_reports_cached_shots(project: Path, cli) -> None:
    data = json.loads(cli("plan", "specs/arcade.yaml", "--json").out)
    key = data["shots"][0]["key"]
    cache = Cache(project / ".storyboard")
    clip = cache.tmp.path()
    clip.write_bytes(b"not checked by plan")
    cache.clips.put(
        key, clip, sha256="0" * 64, duration=6.0, width=1366, height=768, renderer="runware"
    )
    cache.close()
    data = json.loads(cli("plan", "specs/arcade.yaml", "--json").out)
    assert data["shots"][0]["status"] == "cached"
    assert data["totals"]["renders_needed"] == 3
    assert data["totals"]["cost_needed"] == round(0.28 + 0.56 + 0.49, 2)


def test_plan_writes_nothing(project: Path, cli, tmp_path: Path) -> None:
    fresh = tmp_path / "fresh-cache"
    assert cli("plan", "specs/ballroom.yaml", "--cache-dir", fresh).code == 0
    assert not fresh.exists()


def test_prompts_prints_rendered_prompts(project: Path, cli) -> None:
    result = cli("prompts", "specs/ballroom.yaml", "keys", "--json")
    rows = json.loads(result.out)
    assert [r["variant"] for r in rows] == ["pale-morning", "golden-dusk"]
    assert rows[1]["prompt"].startswith("Close on the piano keys")
    assert "golden dusk light" in rows[1]["prompt"]
    assert "\n" not in rows[1]["prompt"]


def test_prompts_unknown_shot(project: Path, cli) -> None:
    result = cli("prompts", "specs/ballroom.yaml", "nope")
    assert result.code == 2
    assert "no shot 'nope'" in result.err


def test_warnings_go_to_stderr(project: Path, cli) -> None:
    spec = project / "specs" / "warn.yaml"
    spec.write_text(
        "version: 1\nname: w\nshots:\n  - id: a\n    prompt: hello there\n    prompt_optimizer: true\n"
    )
    result = cli("plan", spec, "--json")
    assert result.code == 0
    assert "warning: shot 'a': prompt_optimizer is on" in result.err
    assert json.loads(result.out)["warnings"]


def test_prices_of_models_the_catalogue_does_not_price(project: Path, cli) -> None:
    from tests.conftest import write

    text = (
        "version: 1\nname: other\n"
        "shots:\n  - {id: a, prompt: a harbour, model: 'acme:7@1', width: 1280, height: 720}\n"
        "  - {id: b, prompt: a quay, model: 'acme:7@1', width: 1280, height: 720, price: 0.5}\n"
    )
    spec = write(project / "specs" / "other.yaml", text)
    data = json.loads(cli("plan", spec, "--json").out)
    assert [row["price"] for row in data["shots"]] == [None, 0.5]
    assert data["totals"]["unpriced_renders"] == 1
    spec.write_text(text.replace("shots:", "prices: {'acme:7@1': 0.25}\nshots:"))
    data = json.loads(cli("plan", spec, "--json").out)
    assert [row["price"] for row in data["shots"]] == [0.25, 0.5]  # a shot's own price wins
    assert data["totals"]["unpriced_renders"] == 0
