"""Each shipped model's card (models/<name>/README.md) is what benchmarks/shipped_models.py
writes from its results file: no figure in a card is edited by hand or left from an older
measurement."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results" / "shipped_models.json"
SAVED = json.loads(RESULTS.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):  # type: ignore[no-untyped-def]
    """benchmarks/shipped_models.py as a module (it imports its neighbour ``_machine``), its
    photo folder pointed at one that does not exist: a clean clone has no `make data` photos,
    and a card must be written from tracked files alone."""
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(ROOT / "benchmarks"))
        import shipped_models

        mp.setattr(shipped_models, "HELD_OUT", tmp_path_factory.mktemp("no-data") / "held-out")
        yield shipped_models


@pytest.mark.parametrize("name", sorted(SAVED["models"]))
def test_the_card_is_written_from_the_results(shipped, name: str) -> None:  # type: ignore[no-untyped-def]
    folder = ROOT / "models" / name
    expected = shipped.card(name, folder, SAVED["models"][name], SAVED["machine"], SAVED["threads"])
    assert (folder / "README.md").read_text(encoding="utf-8") == expected, (
        f"models/{name}/README.md differs from its results: run "
        "benchmarks/shipped_models.py --cards-only"
    )


def test_the_denoiser_card_gives_the_bias_over_noise_draws() -> None:
    s25 = SAVED["models"]["denoise-blind"]["sigmas"]["sigma25"]
    draws = s25["shift_draws"]
    card = (ROOT / "models" / "denoise-blind" / "README.md").read_text(encoding="utf-8")
    assert f"dark regions, mean of {draws} noise draws" in card
    for precision in ("fp32", "int8"):
        assert f"{s25[precision]['colour_bias_dark_lsb']:.2f}" in card
