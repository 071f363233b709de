"""The documentation site: `mkdocs build --strict` gives no warning, and in headless Chromium,
served from localhost with every other host unreachable, its index and the export guide load
every stylesheet, script and image they ask for and link only to pages and anchors that exist.

.ci/run installs Debian's chromium; on a machine without it the browser test is skipped, saying
so (the build test runs everywhere).
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PACKAGES = ("runtime", "cluster", "runners", "evaluation", "train", "export", "pipeline", "cli")


def link_tree() -> None:
    """edgegen.* as links to the folders, which the API reference reads (`make symlinks`)."""
    tree = ROOT / ".typecheck" / "edgegen"
    tree.mkdir(parents=True, exist_ok=True)
    for name in (*PACKAGES, "models"):
        link = tree / name
        if not link.is_symlink():
            link.symlink_to(Path("..", "..", name))


def build(site: Path) -> subprocess.CompletedProcess[str]:
    link_tree()
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=300,
    )  # fmt: skip


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("site")
    proc = build(folder)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return folder


def test_the_site_builds_with_no_warning(site: Path) -> None:
    for page in ("index.html", "guide/export.html", "guide/own-networks.html", "api.html"):
        assert (site / page).is_file(), page
    api = (site / "api.html").read_text(encoding="utf-8")
    assert "verify" in api and "run_batch" in api  # Generator's methods, from the docstrings
    own = (site / "guide" / "own-networks.html").read_text(encoding="utf-8")
    assert "SwinIR" in own and "tiled max LSB" in own  # the README's table, included


def test_a_broken_link_fails_the_build(tmp_path: Path) -> None:
    """--strict turns mkdocs' link warnings into a failed build: the check can fail."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# x\n\nSee [the guide](guide/nope.md#there).\n")
    config = "site_name: x\nvalidation:\n  links:\n    not_found: warn\n"
    (tmp_path / "mkdocs.yml").write_text(config)
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "s")],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
        env=dict(os.environ, NO_MKDOCS_2_WARNING="1"),
    )  # fmt: skip
    assert proc.returncode != 0 and "guide/nope.md" in proc.stdout + proc.stderr


class Links(HTMLParser):
    """Every link (a href) and every resource (img, script, link) of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.resources: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v for k, v in attrs if v is not None}
        if "id" in values:
            self.ids.add(values["id"])
        if tag == "a" and "href" in values:
            self.links.append(values["href"])
        elif tag in ("img", "script") and "src" in values:
            self.resources.append(values["src"])
        elif tag == "link" and "href" in values and values.get("rel") != "canonical":
            self.resources.append(values["href"])


def parsed(html: str) -> Links:
    found = Links()
    found.feed(html)
    return found


@pytest.fixture
def served(site: Path) -> Iterator[tuple[str, list[tuple[str, int]]]]:
    """The site on 127.0.0.1 at a free port, and the log of (path, status) it answered."""
    log: list[tuple[str, int]] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            log.append((self.path, int(code) if str(code).isdigit() else 0))

    handler = functools.partial(Handler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", log
    finally:
        server.shutdown()
        server.server_close()


def rendered(url: str, profile: Path) -> str:
    """The page's DOM after Chromium ran its scripts; every host but 127.0.0.1 unreachable."""
    proc = subprocess.run(
        [
            str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            f"--user-data-dir={profile}", "--virtual-time-budget=3000", "--dump-dom", url,
        ],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0 and "<html" in proc.stdout, proc.stderr[-2000:]
    return proc.stdout


@pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)"
)
@pytest.mark.parametrize("page", ["index.html", "guide/export.html"])
def test_the_page_in_chromium_has_no_broken_link_or_image(
    site: Path, served: tuple[str, list[tuple[str, int]]], page: str, tmp_path: Path
) -> None:
    base, log = served
    dom = parsed(rendered(base + page, tmp_path / "profile"))
    assert log and log[0] == (f"/{page}", 200), log[:3]
    # Everything the browser fetched (stylesheets, scripts, images, the search index) was there.
    assert [entry for entry in log if entry[1] != 200] == []
    for resource in dom.resources:
        assert urlsplit(urljoin(base + page, resource)).netloc == urlsplit(base).netloc, resource
    checked = 0
    for href in dom.links:
        url = urlsplit(urljoin(base + page, href))
        if url.scheme in ("http", "https") and url.netloc != urlsplit(base).netloc:
            continue  # another site: not fetched offline (the build checked our own links)
        target = site / unquote(url.path).lstrip("/")
        if target.is_dir():
            target = target / "index.html"
        assert target.is_file(), f"{page}: {href} -> {target} does not exist"
        if url.fragment:
            ids = parsed(target.read_text(encoding="utf-8")).ids
            assert unquote(url.fragment) in ids, f"{page}: {href}: no #{url.fragment} there"
        checked += 1
    assert checked > 20  # the navigation and the page's own links
