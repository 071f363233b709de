"""`make check-arm64` says plainly when this machine cannot run it, and exits 0 only when asked
to (as CI asks): the check itself runs in CI, not in `make test` (its emulated root takes
minutes to build)."""

from __future__ import annotations

from pathlib import Path

import pytest
from clitools import load_script

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "check_arm64.py"


def load() -> object:
    return load_script(SCRIPT)


@pytest.mark.parametrize(("flags", "code"), [([], 3), (["--allow-skip"], 0)])
def test_without_root_it_says_why_and_does_not_pretend(
    flags: list[str], code: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    module = load()
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    assert module.main(flags) == code  # type: ignore[attr-defined]
    out = capsys.readouterr().out
    assert "check-arm64: not run: needs root" in out
    assert "PASS" not in out


def test_the_int8_layout_is_read_from_the_manifest(tmp_path: Path) -> None:
    module = load()
    (tmp_path / "model.int8.manifest.json").write_text(
        '{"calibration": {"channel_pad": ["/head/Conv"]}}'
    )
    (tmp_path / "plain.int8.manifest.json").write_text('{"calibration": {"channel_pad": []}}')
    (tmp_path / "model.fp32.manifest.json").write_text("{}")
    assert module.layout_of(tmp_path / "model.int8.onnx") == "x86 (channels padded)"  # type: ignore[attr-defined]
    assert module.layout_of(tmp_path / "plain.int8.onnx") == "plain"  # type: ignore[attr-defined]
    assert module.layout_of(tmp_path / "model.fp32.onnx") is None  # type: ignore[attr-defined]
