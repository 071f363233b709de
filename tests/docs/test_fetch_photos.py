"""`make data` (scripts/fetch_photos.py): photos taken out of a real .deb (built here with
dpkg-deb), checked against their sha256, downscaled per split, listed with their licence; a
changed package is one line and exit 1, and the photos already written stay as they were. The
real photo list names distinct files, each once, in both splits."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tomllib
from clitools import load_script
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "fetch_photos.py"

pytestmark = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")


def load() -> object:
    return load_script(SCRIPT)


def build_deb(tmp: Path, name: str, version: str, photos: dict[str, tuple[int, int]]) -> Path:
    root = tmp / f"{name}-root"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: t <t@t>\n"
        "Description: test photos\n"
    )
    rng = np.random.default_rng(0)
    for rel, (w, h) in photos.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path, quality=95)
    debs = tmp / "debs"
    debs.mkdir(exist_ok=True)
    deb = debs / f"{name}_{version.replace(':', '%3a')}_all.deb"  # as apt names it
    subprocess.run(["dpkg-deb", "--build", str(root), str(deb)], check=True, capture_output=True)
    return root


def sources(tmp: Path, entries: list[tuple[str, str, str, Path, str]]) -> Path:
    text = []
    for name, version, split, root, rel in entries:
        sha = hashlib.sha256((root / rel).read_bytes()).hexdigest()
        text += [
            "[[package]]", f'name = "{name}"', f'version = "{version}"', f'split = "{split}"',
            'licence = "CC0-1.0"', f'photos = [{{ path = "{rel}", sha256 = "{sha}" }}]', "",
        ]  # fmt: skip
    path = tmp / "sources.toml"
    path.write_text("\n".join(text))
    return path


def test_photos_come_out_checked_downscaled_and_listed(tmp_path: Path) -> None:
    module = load()
    a = build_deb(tmp_path, "pics-a", "1.0-1", {"usr/share/a/big.jpg": (1600, 1000)})
    b = build_deb(tmp_path, "pics-b", "2:3.1", {"usr/share/b/small.jpg": (900, 500)})
    src = sources(
        tmp_path,
        [
            ("pics-a", "1.0-1", "train", a, "usr/share/a/big.jpg"),
            ("pics-b", "2:3.1", "held-out", b, "usr/share/b/small.jpg"),
        ],
    )
    out = tmp_path / "photos"
    argv = ["--out", str(out), "--debs", str(tmp_path / "debs"), "--sources", str(src)]
    assert module.main(argv) == 0  # type: ignore[attr-defined]
    with Image.open(out / "train" / "pics-a" / "big.png") as im:
        assert im.size == (1280, 800)  # long side 1280 for training
    with Image.open(out / "held-out" / "pics-b" / "small.png") as im:
        assert im.size == (640, 356)  # 640 for held-out photos
    listing = (out / "SOURCES.md").read_text()
    assert "| train/pics-a/big.png | pics-a 1.0-1 | usr/share/a/big.jpg | CC0-1.0 |" in listing
    assert "pics-b 2:3.1" in listing
    # scikit-image's photos join them, split as edgegen splits them
    assert (out / "held-out" / "scikit-image" / "chelsea.png").is_file()
    assert (out / "train" / "scikit-image" / "astronaut.png").is_file()


def test_a_changed_package_is_one_line_and_nothing_written_is_damaged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    module = load()
    a = build_deb(tmp_path, "pics-a", "1.0-1", {"usr/share/a/one.jpg": (300, 200)})
    src = sources(tmp_path, [("pics-a", "1.0-1", "train", a, "usr/share/a/one.jpg")])
    out = tmp_path / "photos"
    argv = ["--out", str(out), "--debs", str(tmp_path / "debs"), "--sources", str(src)]
    assert module.main(argv) == 0  # type: ignore[attr-defined]
    before = (out / "train" / "pics-a" / "one.png").read_bytes()
    text = src.read_text()
    sha = text.split('sha256 = "')[1][:64]
    src.write_text(text.replace(sha, "0" * 64))
    capsys.readouterr()
    assert module.main(argv) == 1  # type: ignore[attr-defined]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "usr/share/a/one.jpg" in err[0] and "the package changed" in err[0]
    assert (out / "train" / "pics-a" / "one.png").read_bytes() == before
    assert not [p for p in out.rglob(".*") if p.is_file()]  # no temporary file left behind


def test_the_photo_list_is_sound() -> None:
    data = tomllib.loads((ROOT / "data" / "sources.toml").read_text())
    splits = {p["name"]: p["split"] for p in data["package"]}
    assert set(splits.values()) == {"train", "held-out"}
    photos = [(p["name"], photo) for p in data["package"] for photo in p["photos"]]
    shas = [photo["sha256"] for _, photo in photos]
    assert len(set(shas)) == len(shas)  # no photo twice, in one split or across them
    assert all(len(s) == 64 and int(s, 16) >= 0 for s in shas)
    assert all(p.get("licence") for p in data["package"])
    held = sum(1 for name, _ in photos if splits[name] == "held-out")
    assert held >= 10 and len(photos) - held >= 40
