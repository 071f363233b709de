"""The ``edgegen compare --report DIR`` page: one self-contained, offline HTML file.

Everything is inside ``DIR/index.html``: images are base64 PNG ``data:`` URIs (encoded with
Pillow, imported only here, when a report is written), the CSS is inline and the latency chart is
inline SVG drawn here; no scripts, no fonts, nothing fetched. A Content-Security-Policy meta tag
forbids any other source, so a browser opening it offline shows all of it.

Per variant x provider: the metrics rows (the numbers of the table and the JSON), and per photo
the crops side by side (degraded input, reference output, variant output, ground truth) and an
error heatmap, |variant - reference| in 8-bit steps (LSB, the largest over channels), coloured
from 0 to the caption's maximum. The page is written atomically (:func:`atomic_write_text`).
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgegen.runtime.files import atomic_write_text
from edgegen.runtime.images import resize

from .compare import NO_THRESHOLDS, CompareResult, VariantResult
from .formats import cells

# Colormap stops (position, RGB): black, purple, red, orange, pale yellow (an inferno-like ramp).
_STOPS = (
    (0.00, (0, 0, 4)),
    (0.25, (87, 16, 110)),
    (0.50, (188, 55, 84)),
    (0.75, (249, 142, 9)),
    (1.00, (252, 255, 164)),
)

_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;background:#fff}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:2em}h3{font-size:1em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
th,td{border:1px solid #ccc;padding:.2em .5em;text-align:right}
th{background:#f2f2f2}td:first-child,th:first-child{text-align:left}
.pass{color:#0a7a2a;font-weight:bold}.fail{color:#b00020;font-weight:bold}
.unchecked{color:#555;font-weight:bold}
.row{display:flex;flex-wrap:wrap;gap:.6em;align-items:flex-start}
figure{margin:0}figcaption{font-size:.8em;color:#444;max-width:200px}
img{image-rendering:pixelated;border:1px solid #ddd}
section.variant{border-top:2px solid #ccc;margin-top:1.5em}
ul.failures li{color:#b00020}
"""


def colormap(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] (clipped) -> uint8 RGB through :data:`_STOPS`, linearly interpolated."""
    v = np.clip(np.asarray(values, dtype=np.float32), 0.0, 1.0)
    xs = np.array([p for p, _ in _STOPS], dtype=np.float32)
    out = np.empty((*v.shape, 3), dtype=np.uint8)
    for c in range(3):
        ys = np.array([rgb[c] for _, rgb in _STOPS], dtype=np.float32)
        out[..., c] = np.rint(np.interp(v, xs, ys)).astype(np.uint8)
    return out


def error_lsb(variant: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """|variant - reference| in LSB (x 255), the largest over channels: float32 HW."""
    diff = np.abs(variant.astype(np.float32) - reference.astype(np.float32)) * np.float32(255.0)
    out: np.ndarray = diff.max(axis=2) if diff.ndim == 3 else diff
    return out


def heatmap(err: np.ndarray, scale_max: float) -> np.ndarray:
    """An error map (LSB) as uint8 RGB, 0 -> black and ``scale_max`` (or more) -> pale yellow."""
    return colormap(err / np.float32(scale_max if scale_max > 0 else 1.0))


def to_uint8(image: np.ndarray) -> np.ndarray:
    """float HWC in [0, 1] -> uint8 (HW for one channel)."""
    x = np.asarray(image, dtype=np.float32)
    if x.ndim == 3 and x.shape[2] == 1:
        x = x[:, :, 0]
    out: np.ndarray = np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)
    return out


def png_data_uri(array: np.ndarray) -> str:
    """A uint8 HW / HWC array as a ``data:image/png;base64,...`` URI (Pillow, imported here)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _img(array: np.ndarray, alt: str, caption: str, kind: str, uri: str | None = None) -> str:
    h, w = array.shape[:2]
    src = uri if uri is not None else png_data_uri(array)
    return (
        f'<figure><img class="{kind}" alt="{html.escape(alt)}" width="{w}" height="{h}" '
        f'src="{src}"><figcaption>{html.escape(caption)}</figcaption></figure>'
    )


def _shared(result: CompareResult) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per photo, the crops every variant shows (degraded input at the output's size, reference,
    ground truth) as uint8."""
    shared = []
    for crop in result.crops:
        h, w = crop.reference.shape[:2]
        degraded = to_uint8(resize(crop.degraded, max(1, result.scale), "nearest"))[:h, :w]
        shared.append((degraded, to_uint8(crop.reference), to_uint8(crop.clean)))
    return shared


def latency_svg(labels: Sequence[str], p50: Sequence[float], p95: Sequence[float]) -> str:
    """Horizontal bars, p50 and p95 (ms) per label, as inline SVG (no xmlns needed in HTML)."""
    label_w, bar_w, bar_h, gap, top = 300, 380, 10, 10, 24
    width = label_w + bar_w + 90
    height = top + len(labels) * (2 * bar_h + gap) + 10
    peak = max([*p50, *p95, 1e-9])
    parts = [
        f'<svg class="latency" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="latency p50 and p95 in ms">',
        '<rect x="0" y="0" width="12" height="10" fill="#3b6fb6"/>'
        '<text x="16" y="10" font-size="11">p50 ms</text>'
        '<rect x="80" y="0" width="12" height="10" fill="#e08a2c"/>'
        '<text x="96" y="10" font-size="11">p95 ms</text>',
    ]
    for i, (label, a, b) in enumerate(zip(labels, p50, p95, strict=True)):
        y = top + i * (2 * bar_h + gap)
        parts.append(
            f'<text x="{label_w - 6}" y="{y + bar_h + 4}" font-size="11" '
            f'text-anchor="end">{html.escape(label)}</text>'
        )
        for k, (value, color) in enumerate(((a, "#3b6fb6"), (b, "#e08a2c"))):
            yy = y + k * bar_h
            length = max(1.0, bar_w * value / peak)
            parts.append(
                f'<rect x="{label_w}" y="{yy}" width="{length:.1f}" height="{bar_h - 1}" '
                f'fill="{color}"/><text x="{label_w + length + 4:.1f}" y="{yy + bar_h - 1}" '
                f'font-size="10">{value:.2f}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


_UNCHECKED = (
    f"{NO_THRESHOLDS} (--max-lsb, --min-psnr, --max-psnr-drop): the metrics are shown, "
    "nothing is checked"
)


def _badge(verdict: str) -> str:
    """A verdict as a coloured span: PASS green, FAIL red, no thresholds set neutral grey."""
    css = {"PASS": "pass", "FAIL": "fail"}.get(verdict, "unchecked")
    return f'<span class="{css}">{html.escape(verdict)}</span>'


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _variant_section(
    result: CompareResult,
    v: VariantResult,
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    shared: Sequence[tuple[tuple[np.ndarray, str], ...]],
) -> str:
    name = v.where
    status = _badge("FAIL" if v.failures else result.verdict)
    parts = [
        f'<section class="variant" id="{html.escape(v.name)}-{html.escape(v.runtime)}-'
        f'{html.escape(v.provider)}">',
        f"<h2>{html.escape(name)} {status}</h2>",
        f"<p>{html.escape(v.precision)}, {v.model_bytes / 1e6:.3f} MB; ran on "
        f"{html.escape(', '.join(v.providers_ran))}; first call {v.first_call_ms:.1f} ms, "
        f"p50 {v.latency_p50_ms:.2f} ms, p95 {v.latency_p95_ms:.2f} ms</p>",
        _table(header, rows),
    ]
    if v.failures:
        parts.append(
            '<ul class="failures">'
            + "".join(f"<li>{html.escape(f)}</li>" for f in v.failures)
            + "</ul>"
        )
    errors = [error_lsb(out, c.reference) for out, c in zip(v.crops, result.crops, strict=True)]
    scale_max = max([float(e.max()) for e in errors] + [0.0])
    shown = scale_max if scale_max > 0 else 1.0
    for crop, out, err, common in zip(result.crops, v.crops, errors, shared, strict=True):
        (degraded, d_uri), (reference, r_uri), (clean, c_uri) = common
        h, w = out.shape[:2]
        where = f"{crop.photo} ({crop.size}, center {h}x{w})"
        parts += [
            f"<h3>{html.escape(where)}</h3>",
            '<div class="row">',
            _img(degraded, f"{crop.photo} degraded input", "degraded input", "crop", d_uri),
            _img(reference, f"{crop.photo} reference", "reference", "crop", r_uri),
            _img(to_uint8(out), f"{crop.photo} {name}", f"variant: {name}", "crop"),
            _img(clean, f"{crop.photo} ground truth", "ground truth", "crop", c_uri),
            _img(
                heatmap(err, shown),
                f"{crop.photo} error heatmap",
                f"|variant - reference|, 0 to {shown:.4g} LSB (max here {float(err.max()):.4g})",
                "heatmap",
            ),
            "</div>",
        ]
    parts.append("</section>")
    return "\n".join(parts)


def render_report(result: CompareResult) -> str:
    """The whole page as one string."""
    all_rows = cells(result.COLUMNS, result.records())
    header, body = all_rows[0], all_rows[1:]
    ref = result.reference
    labels = [f"reference {ref['name']}"] + [v.where for v in result.variants]
    p50 = [float(ref["latency_p50_ms"])] + [v.latency_p50_ms for v in result.variants]
    p95 = [float(ref["latency_p95_ms"])] + [v.latency_p95_ms for v in result.variants]
    settings = result.settings
    ref_line = ", ".join(f"{r['size']} GT PSNR {r['gt_psnr']:.2f} dB" for r in ref.get("rows", []))
    bar = colormap(np.linspace(0.0, 1.0, 256, dtype=np.float32)[None, :].repeat(12, axis=0))
    status = result.verdict
    limits = result.thresholds.describe()
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "img-src data:; style-src 'unsafe-inline'\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>edgegen compare: {html.escape(status)}</title><style>{_CSS}</style></head><body>",
        f"<h1>edgegen compare: {_badge(status)}</h1>",
        f"<p>reference {html.escape(str(ref['name']))} ({html.escape(str(ref['kind']))}, "
        f"{html.escape(', '.join(ref['providers_ran']))}): {html.escape(ref_line)}</p>",
        f"<p>photos: {html.escape(', '.join(settings.get('photos', [])))}; sizes: "
        f"{html.escape(', '.join(settings.get('sizes', [])))}; providers: "
        f"{html.escape(', '.join(settings.get('providers', [])))}; repeats: "
        f"{settings.get('repeats')}</p>",
        '<p class="thresholds">'
        + html.escape(f"thresholds: {', '.join(limits)}" if limits else _UNCHECKED)
        + "</p>",
    ]
    if result.failures:
        parts.append(
            '<ul class="failures">'
            + "".join(f"<li>{html.escape(f)}</li>" for f in result.failures)
            + "</ul>"
        )
    parts += [
        "<h2>Latency (ms, after warm-up, all sizes pooled)</h2>",
        latency_svg(labels, p50, p95),
        "<h2>Metrics</h2>",
        _table(header, body),
        '<p>Heatmap colours, 0 (left) to the caption\'s maximum (right): <img class="colorbar" '
        f'alt="colour scale" width="256" height="12" src="{png_data_uri(bar)}"></p>',
    ]
    # The crops every variant shows are encoded once and their URIs reused.
    shared = [tuple((a, png_data_uri(a)) for a in arrays) for arrays in _shared(result)]
    start = 0
    for v in result.variants:
        rows = body[start : start + len(v.rows)]
        start += len(v.rows)
        parts.append(_variant_section(result, v, header, rows, shared))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_report(result: CompareResult, folder: Path) -> Path:
    """Write ``folder/index.html`` atomically (the folder is created); returns its path."""
    path = folder / "index.html"
    atomic_write_text(path, render_report(result))
    return path


__all__ = ["colormap", "heatmap", "latency_svg", "render_report", "write_report"]
