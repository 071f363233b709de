"""The web target's fixtures: onnxruntime-web (installed by `make install`'s `npm ci`) and a page
packed from the shipped models with a noisy held-out photo beside it (helpers: webtools)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from webtools import noisy_photo, ort_web_or_skip


@pytest.fixture(scope="session")
def ort_web() -> Any:
    return ort_web_or_skip()


@pytest.fixture(scope="session")
def page(tmp_path_factory: pytest.TempPathFactory, ort_web: Any) -> Path:
    """The shipped models packed by `edgegen web`, with a noisy held-out photo beside them."""
    from clitools import run_edgegen

    folder = tmp_path_factory.mktemp("web") / "page"
    proc = run_edgegen("web", "denoise-blind", "denoise-blind:fp32", "sr2", "-o", str(folder))
    assert proc.returncode == 0, proc.stderr
    noisy_photo(folder / "photo.png")
    return folder
