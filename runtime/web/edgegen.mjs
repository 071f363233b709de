// edgegen's runtime for JavaScript: an exported model on onnxruntime-web, in a browser or Node.
//
// The same files as the Python runtime (model.<p>.onnx, its manifest.json, its golden.npz) and
// the same arithmetic: pixels become the model's tensors, are padded (reflect) to its pad
// multiple, run whole or in tiles that start on that multiple and are blended with the same
// weights, and come back as 8-bit pixels rounded half to even. Every step is float32 as numpy
// computes it, so a page and `edgegen run` differ only where the two runtimes' kernels do.
//
// onnxruntime-web is passed in (`ort`), never imported here: an app picks its build (wasm,
// webgpu, a bundler's copy) and this module works with any of them.
//
//   import * as ort from "./ort/ort.wasm.min.mjs";
//   import { Generator } from "./edgegen.mjs";
//   const gen = await Generator.load(ort, "model.int8.manifest.json", { threads: 4 });
//   const report = await gen.verify();           // the golden samples, on this device
//   const out = await gen.run({ data, width, height }, { onProgress });  // RGBA in, RGBA out
//
// A Gaussian denoiser's output has its local colour means matched to the input's (matchMeans
// below, as the Python runtime's means.py; option matchMeans: false turns it off).

export const FORMAT = "edgegen-web/1";
export const AUTO_TILE_PIXELS = 1024 * 1024; // tile: null tiles only images larger than this
export const AUTO_TILE = 512;
export const MIN_OVERLAP = 16;
export const PSNR_CAP = 150;
const TORCH_RELATIVE = ["max_lsb", "max_pct_over_1lsb", "min_psnr_vs_torch"];
const TOLERANCE_BOUNDS = {
  max_lsb: [0, 255],
  max_pct_over_1lsb: [0, 100],
  min_psnr_vs_torch: [0, 200],
  max_gt_psnr_drop: [-100, 100],
};

/** An error with one line that names the problem (what the page shows, what Node prints). */
export class EdgegenError extends Error {
  constructor(message) {
    super(message);
    this.name = "EdgegenError";
  }
}

const f32 = Math.fround;

// -- files ------------------------------------------------------------------------------------

/** Lowercase hex sha256 of bytes (WebCrypto: browsers in a secure context, Node >= 18). */
export async function sha256Hex(bytes) {
  const subtle = globalThis.crypto && globalThis.crypto.subtle;
  if (!subtle) {
    throw new EdgegenError(
      "this page cannot check sha256 (no WebCrypto): serve it over https or from localhost",
    );
  }
  const digest = new Uint8Array(await subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

const IS_NODE = typeof process !== "undefined" && Boolean(process.versions?.node);

/** Bytes of a URL (relative to `base`) or, in Node, of a path or file: URL; a missing file is
 * one clear line. */
export async function readBytes(location, base) {
  if (location instanceof Uint8Array) return location;
  if (location instanceof ArrayBuffer) return new Uint8Array(location);
  let url = null;
  try {
    url = new URL(location, base);
  } catch {
    url = null; // a relative path without a base: the document's, or Node's working folder
  }
  if (IS_NODE && (!url || url.protocol === "file:")) {
    const { readFile } = await import("node:fs/promises");
    try {
      return new Uint8Array(await readFile(url ?? location));
    } catch (err) {
      throw new EdgegenError(`cannot read ${location}: ${err.code || err.message}`);
    }
  }
  let response;
  try {
    response = await fetch(url ?? location);
  } catch (err) {
    throw new EdgegenError(`cannot fetch ${location}: ${err.message}`);
  }
  if (!response.ok) throw new EdgegenError(`cannot fetch ${location}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

async function inflateRaw(bytes) {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate-raw"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** The arrays of an .npz (numpy's zip of .npy files): name -> {shape, data}. float32 and uint8
 * only, little-endian, C order: what edgegen's golden files hold. */
export async function readNpz(bytes, where = "npz") {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let eocd = -1;
  for (let i = bytes.length - 22; i >= Math.max(0, bytes.length - 65557); i--) {
    if (view.getUint32(i, true) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new EdgegenError(`${where} is not a zip file (no end record)`);
  const count = view.getUint16(eocd + 10, true);
  let p = view.getUint32(eocd + 16, true);
  const arrays = new Map();
  for (let k = 0; k < count; k++) {
    if (p + 46 > bytes.length || view.getUint32(p, true) !== 0x02014b50) {
      throw new EdgegenError(`${where}: a broken zip directory`);
    }
    const method = view.getUint16(p + 10, true);
    let csize = view.getUint32(p + 20, true);
    let usize = view.getUint32(p + 24, true);
    const nlen = view.getUint16(p + 28, true);
    const xlen = view.getUint16(p + 30, true);
    const clen = view.getUint16(p + 32, true);
    let local = view.getUint32(p + 42, true);
    const name = new TextDecoder().decode(bytes.subarray(p + 46, p + 46 + nlen));
    // zip64: the sizes and offset that did not fit sit in the extra field, in this order
    let x = p + 46 + nlen;
    const xend = x + xlen;
    while (x + 4 <= xend) {
      const id = view.getUint16(x, true);
      const size = view.getUint16(x + 2, true);
      if (id === 1) {
        let q = x + 4;
        const big = () => {
          const v = Number(view.getBigUint64(q, true));
          q += 8;
          return v;
        };
        if (usize === 0xffffffff) usize = big();
        if (csize === 0xffffffff) csize = big();
        if (local === 0xffffffff) local = big();
      }
      x += 4 + size;
    }
    p = xend + clen;
    if (view.getUint32(local, true) !== 0x04034b50) {
      throw new EdgegenError(`${where}: a broken zip entry ${name}`);
    }
    const start = local + 30 + view.getUint16(local + 26, true) + view.getUint16(local + 28, true);
    const raw = bytes.subarray(start, start + csize);
    let data;
    if (method === 0) data = raw;
    else if (method === 8) data = await inflateRaw(raw);
    else throw new EdgegenError(`${where}: ${name} uses zip method ${method}`);
    if (data.length !== usize) throw new EdgegenError(`${where}: ${name} is truncated`);
    arrays.set(name.replace(/\.npy$/, ""), parseNpy(data, `${where}:${name}`));
  }
  return arrays;
}

function parseNpy(bytes, where) {
  const magic = String.fromCharCode(...bytes.subarray(1, 6));
  if (bytes[0] !== 0x93 || magic !== "NUMPY") throw new EdgegenError(`${where} is not .npy`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const major = bytes[6];
  const hlen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const hstart = major === 1 ? 10 : 12;
  const header = new TextDecoder().decode(bytes.subarray(hstart, hstart + hlen));
  const descr = /'descr':\s*'([^']+)'/.exec(header);
  const fortran = /'fortran_order':\s*(True|False)/.exec(header);
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header);
  if (!descr || !fortran || !shapeText) throw new EdgegenError(`${where}: a malformed header`);
  if (fortran[1] === "True") throw new EdgegenError(`${where}: Fortran order is not supported`);
  const shape = shapeText[1]
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s)
    .map(Number);
  const n = shape.reduce((a, b) => a * b, 1);
  const body = bytes.slice(hstart + hlen); // a copy: aligned for Float32Array
  if (descr[1] === "<f4") {
    if (body.length < n * 4) throw new EdgegenError(`${where} is truncated`);
    return { shape, data: new Float32Array(body.buffer, 0, n) };
  }
  if (descr[1] === "|u1") return { shape, data: body.subarray(0, n) };
  throw new EdgegenError(`${where}: dtype ${descr[1]} is not supported`);
}

// -- spec -------------------------------------------------------------------------------------

function checkSpec(spec, where) {
  const fail = (what) => {
    throw new EdgegenError(`${where}: the spec's ${what}`);
  };
  if (!spec || typeof spec !== "object") fail("record is missing");
  const int = (v, lo, hi) => Number.isInteger(v) && v >= lo && v <= hi;
  if (!int(spec.scale, 1, 16)) fail(`scale ${spec.scale} is not 1..16`);
  if (!int(spec.in_channels, 1, 3) || spec.in_channels === 2) fail("in_channels is not 1 or 3");
  if (!int(spec.out_channels, 1, 3) || spec.out_channels === 2) fail("out_channels is not 1 or 3");
  if (!int(spec.pad_multiple, 1, 1024)) fail(`pad_multiple ${spec.pad_multiple} is not 1..1024`);
  if (!["NCHW", "NHWC"].includes(spec.layout)) fail(`layout ${spec.layout} is unknown`);
  if (!["RGB", "BGR", "GRAY"].includes(spec.color_order)) fail("color_order is unknown");
  const range = spec.value_range;
  if (!Array.isArray(range) || range.length !== 2 || !range.every(Number.isFinite)) {
    fail("value_range is not two numbers");
  }
  if (!(range[1] > range[0])) fail("value_range is empty");
  return spec;
}

function roundUp(value, multiple) {
  return Math.ceil(value / multiple) * multiple;
}

export function defaultOverlap(receptiveField, padMultiple = 1) {
  return roundUp(Math.max(MIN_OVERLAP, receptiveField || 0), padMultiple);
}

export function defaultMargin(receptiveField, overlap) {
  const half = receptiveField ? Math.floor(receptiveField / 2) : Math.floor(overlap / 4);
  return Math.max(0, Math.min(half, Math.floor((overlap - 1) / 2)));
}

// -- tiling (edgegen/runtime/tiling.py, step for step) -----------------------------------------

export function tileStarts(length, tile, overlap, align = 1) {
  if (length <= tile) return [0];
  const step = tile - overlap;
  const last = Math.floor((length - tile) / align) * align;
  const out = [];
  for (let s = 0; s < last; s += step) out.push(s);
  out.push(last);
  return out;
}

function tileSpans(length, tile, overlap, align) {
  const positions = tileStarts(length, tile, overlap, align);
  const spans = positions.slice(0, -1).map((s) => [s, Math.min(tile, length - s)]);
  const last = positions[positions.length - 1];
  spans.push([last, length - last]);
  return spans;
}

function tileWindow(size, ramp, margin, left, right) {
  const w = new Float64Array(size).fill(1);
  const width = Math.max(ramp - 2 * margin, 1);
  const clip = (v) => Math.min(1, Math.max(0, v));
  for (let i = 0; i < size; i++) {
    if (left) w[i] = Math.min(w[i], clip((i - margin + 0.5) / width));
    if (right) w[i] = Math.min(w[i], clip((size - 1 - i - margin + 0.5) / width));
  }
  return w;
}

export function axisWeights(length, tile, overlap, margin, scale, align) {
  const spans = tileSpans(length, tile, overlap, align);
  const total = new Float64Array(length * scale);
  const windows = spans.map(([s, n], k) => {
    const w = tileWindow(n * scale, overlap * scale, margin * scale, k > 0, k < spans.length - 1);
    for (let i = 0; i < w.length; i++) total[s * scale + i] += w[i];
    return [s * scale, n * scale, w];
  });
  return windows.map(([o, n, w]) => {
    const norm = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      if (!(total[o + i] > 0)) throw new EdgegenError("tiling left pixels without weight");
      norm[i] = w[i] / total[o + i];
    }
    return [o, n, norm];
  });
}

// -- tensors ----------------------------------------------------------------------------------

/** NCHW float32 padded at the bottom and right to a multiple (numpy's reflect; edge where the
 * image is too small to reflect). */
export function padToMultiple(data, dims, multiple) {
  const [n, c, h, w] = dims;
  const ph = (multiple - (h % multiple)) % multiple;
  const pw = (multiple - (w % multiple)) % multiple;
  if (!ph && !pw) return { data, dims };
  const H = h + ph;
  const W = w + pw;
  const reflect = ph < h && pw < w;
  const src = (i, len) => (i < len ? i : reflect ? 2 * (len - 1) - i : len - 1);
  const out = new Float32Array(n * c * H * W);
  for (let p = 0; p < n * c; p++) {
    for (let y = 0; y < H; y++) {
      const sy = src(y, h);
      for (let x = 0; x < W; x++) out[(p * H + y) * W + x] = data[(p * h + sy) * w + src(x, w)];
    }
  }
  return { data: out, dims: [n, c, H, W] };
}

function transpose(data, dims, toNHWC) {
  // NCHW <-> NHWC of a batch; dims are the source's
  const [n, a, b, c] = dims;
  const out = new Float32Array(data.length);
  if (toNHWC) {
    // a=C, b=H, c=W -> N,H,W,C
    for (let i = 0; i < n; i++)
      for (let ch = 0; ch < a; ch++)
        for (let y = 0; y < b; y++)
          for (let x = 0; x < c; x++)
            out[((i * b + y) * c + x) * a + ch] = data[((i * a + ch) * b + y) * c + x];
    return { data: out, dims: [n, b, c, a] };
  }
  // a=H, b=W, c=C -> N,C,H,W
  for (let i = 0; i < n; i++)
    for (let y = 0; y < a; y++)
      for (let x = 0; x < b; x++)
        for (let ch = 0; ch < c; ch++)
          out[((i * c + ch) * a + y) * b + x] = data[((i * a + y) * b + x) * c + ch];
  return { data: out, dims: [n, c, a, b] };
}

/** Round half to even, as numpy's rint. */
function rint(v) {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

// -- mean matching (the Python runtime's means.py, step for step) ----------------------------
//
// After a Gaussian denoiser, the output's local colour means are made the noisy input's, the
// lift that clipping at 0 and 1 gives noisy pixels undone in closed form for the noise level
// read from the residual. Only the low frequencies move (blurred over ~10 pixels).

const MM_RADIUS = 10;
const MM_COARSE = 4;
const MM_STRIP = 64;
const MM_SIGMA_SAMPLE = 1 << 21;
const MM_ITERATIONS = 3;
const MM_CLEAR = 2;
const MM_GRID = 16385;

/** erf to 1.2e-7 (Numerical Recipes' erfc, Chebyshev): the tables below need no more. */
function erf(x) {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r =
    t *
    Math.exp(
      -z * z - 1.26551223 +
        t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 +
        t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 +
        t * 0.17087277)))))))),
    );
  return x >= 0 ? 1 - r : r - 1;
}
const cdf = (z) => 0.5 * (1 + erf(z / Math.SQRT2));
const pdf = (z) => Math.exp((-z * z) / 2) / Math.sqrt(2 * Math.PI);

/** E[clip(c + n, 0, 1)], its slope and its curvature on a grid of c, for noise of level s. */
function clippedTables(s, clipped) {
  const table = new Float32Array(MM_GRID);
  const slope = new Float32Array(MM_GRID);
  const curve = new Float32Array(MM_GRID);
  s = Math.max(s, 1e-4);
  for (let i = 0; i < MM_GRID; i++) {
    const c = i / (MM_GRID - 1);
    if (!clipped) {
      table[i] = c;
      slope[i] = 1;
      continue;
    }
    const a = -c / s;
    const b = (1 - c) / s;
    table[i] = 1 - cdf(b) + c * (cdf(b) - cdf(a)) + s * (pdf(a) - pdf(b));
    slope[i] = cdf(b) - cdf(a);
    curve[i] = (pdf(a) - pdf(b)) / s;
  }
  return { table, slope, curve };
}

function lookup(table, v) {
  return table[Math.trunc(Math.fround(Math.fround(v * (MM_GRID - 1)) + 0.5))];
}

/** The k-th smallest of a (reordered in place), by quickselect: O(n), where a sort is not. */
function select(a, k) {
  let lo = 0;
  let hi = a.length - 1;
  while (hi > lo) {
    const pivot = a[(lo + hi) >> 1];
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i] < pivot) i++;
      while (a[j] > pivot) j--;
      if (i <= j) {
        const t = a[i];
        a[i] = a[j];
        a[j] = t;
        i++;
        j--;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return a[k];
  }
  return a[k];
}

/** numpy's median (the mean of the two middle values of an even count). */
function median(values) {
  const a = Float32Array.from(values);
  const n = a.length;
  const upper = select(a, n >> 1);
  if (n % 2) return upper;
  let lower = -Infinity;
  for (let i = 0; i < n >> 1; i++) if (a[i] > lower) lower = a[i]; // quickselect left the smaller half before n/2
  return (lower + upper) / 2;
}

/** The noise level of x (HWC, C channels, in [0, 1]) from the Laplacian of x - y. */
export function estimateSigma(x, y, h, w, C) {
  if (h < 3 || w < 3) return 0;
  const rows = Math.max(3, Math.min(h, Math.floor(MM_SIGMA_SAMPLE / Math.max(1, w))));
  const count = Math.max(1, Math.ceil(rows / MM_STRIP));
  const span = Math.min(h, MM_STRIP + 2);
  const starts = new Set();
  if (h > MM_STRIP + 2) {
    for (let i = 0; i < count; i++)
      starts.add(count === 1 ? 0 : Math.trunc((i * (h - span)) / (count - 1)));
  } else starts.add(0);
  const strips = [];
  let n = 0;
  for (const r0 of [...starts].sort((a, b) => a - b)) {
    const r1 = Math.min(h, r0 + MM_STRIP + 2);
    if (r1 - r0 < 3) continue;
    strips.push([r0, r1]);
    n += C * (r1 - r0 - 2) * (w - 2);
  }
  const r = new Float32Array(n);
  const low = new Float32Array(n);
  const high = new Float32Array(n);
  const d = new Float32Array(w * C * 3); // the residual x - y of three rows
  let at = 0;
  for (const [r0, r1] of strips)
    for (let k = 0; k < C; k++)
      for (let i = r0 + 1; i < r1 - 1; i++) {
        for (let dy = 0; dy < 3; dy++)
          for (let j = 0, o = (i - 1 + dy) * w * C; j < w * C; j++)
            d[dy * w * C + j] = Math.fround(x[o + j] - y[o + j]);
        const yo = (i - 1) * w * C;
        for (let j = 1; j < w - 1; j++) {
          const a = (j - 1) * C + k;
          const b = a + C;
          const c = b + C;
          const t = 0;
          const m = w * C;
          const u = 2 * w * C;
          // 1 -2 1 / -2 4 -2 / 1 -2 1
          const lap =
            d[t + a] - 2 * d[t + b] + d[t + c] -
            2 * d[m + a] + 4 * d[m + b] - 2 * d[m + c] +
            d[u + a] - 2 * d[u + b] + d[u + c];
          let lo = Infinity;
          let hi = -Infinity;
          for (let dy = 0; dy < 3; dy++)
            for (let dx = 0; dx < 3; dx++) {
              const v = y[yo + dy * w * C + a + dx * C];
              if (v < lo) lo = v;
              if (v > hi) hi = v;
            }
          r[at] = Math.abs(lap);
          low[at] = lo;
          high[at] = hi;
          at += 1;
        }
      }
  let sigma = median(r) / 0.6745 / 6;
  const clear = new Float32Array(n);
  for (let it = 0; it < 3; it++) {
    let m = 0;
    for (let i = 0; i < n; i++)
      if (low[i] > MM_CLEAR * sigma && high[i] < 1 - MM_CLEAR * sigma) clear[m++] = r[i];
    if (m < 256) break;
    sigma = median(clear.subarray(0, m)) / 0.6745 / 6;
  }
  return sigma;
}

/** Means over f x f blocks of an HWC image (edge repeated into the last partial blocks). */
function coarsen(a, h, w, C, f) {
  const H = Math.ceil(h / f);
  const W = Math.ceil(w / f);
  const out = new Float64Array(H * W * C);
  for (let y = 0; y < H * f; y++) {
    const sy = Math.min(y, h - 1);
    for (let x = 0; x < W * f; x++) {
      const sx = Math.min(x, w - 1);
      const o = (Math.floor(y / f) * W + Math.floor(x / f)) * C;
      for (let k = 0; k < C; k++) out[o + k] += a[(sy * w + sx) * C + k];
    }
  }
  for (let i = 0; i < out.length; i++) out[i] /= f * f;
  return { data: out, H, W };
}

/** Mean over 2r+1 along one axis of a (H, W, C) grid, edges mirrored as numpy's "symmetric"
 * (repeated where the axis is shorter than the window). */
function box(a, H, W, C, r, alongRows) {
  const n = alongRows ? H : W;
  const out = new Float64Array(a.length);
  const pick = (i) => {
    if (r >= n) return Math.min(Math.max(i, 0), n - 1);
    if (i < 0) return -i - 1;
    if (i >= n) return 2 * n - i - 1;
    return i;
  };
  const lines = alongRows ? W * C : H * C;
  for (let line = 0; line < lines; line++) {
    const fixed = Math.floor(line / C);
    const k = line % C;
    const at = (i) => (alongRows ? (i * W + fixed) * C + k : (fixed * W + i) * C + k);
    let sum = 0;
    for (let i = -r; i <= r; i++) sum += a[at(pick(i))];
    for (let i = 0; i < n; i++) {
      out[at(i)] = sum / (2 * r + 1);
      sum += a[at(pick(i + r + 1))] - a[at(pick(i - r))];
    }
  }
  return out;
}

function blur(a, H, W, C, scale) {
  const r = Math.max(1, Math.round((Math.sqrt(1 + 4 * scale * scale) - 1) / 2));
  for (let i = 0; i < 3; i++) a = box(box(a, H, W, C, r, true), H, W, C, r, false);
  return a;
}

/** The denoised HWC image `y` (float32, C channels) with its local means matched to the noisy
 * `x`'s, in place. */
export function matchMeans(x, y, h, w, C, sigma = null) {
  for (let i = 0; i < y.length; i++) y[i] = Math.min(1, Math.max(0, y[i]));
  const s = sigma ?? estimateSigma(x, y, h, w, C);
  // noise under half a step barely clips: its lift is a fifth of a step at most
  let clipped = s >= 0.5 / 255;
  for (let i = 0; i < x.length && clipped; i++) clipped = x[i] >= 0 && x[i] <= 1;
  const { table, slope, curve } = clippedTables(s, clipped);
  const f = Math.min(h, w) >= 4 * MM_COARSE ? MM_COARSE : 1;
  const mapped = (t) => y.map((v) => lookup(t, v));
  const cx = coarsen(x, h, w, C, f);
  const { H, W } = cx;
  const seen = coarsen(mapped(table), h, w, C, f).data;
  const first = coarsen(mapped(slope), h, w, C, f).data;
  const second = clipped ? coarsen(mapped(curve), h, w, C, f).data : null;
  const weight = blur(first, H, W, C, MM_RADIUS / f).map((v) => Math.max(v, 0.05));
  const offset = new Float64Array(cx.data.length);
  for (let it = 0; it < MM_ITERATIONS; it++) {
    const gap = new Float64Array(offset.length);
    for (let i = 0; i < gap.length; i++) {
      let expected = seen[i] + first[i] * offset[i];
      if (second) {
        // the second-order term only where the model stays monotone in the offset
        const curved = second[i] * offset[i];
        if (Math.abs(curved) < first[i]) expected += 0.5 * curved * offset[i];
      }
      gap[i] = cx.data[i] - expected;
    }
    const step = blur(gap, H, W, C, MM_RADIUS / f);
    for (let i = 0; i < offset.length; i++) offset[i] += step[i] / weight[i];
  }
  const coarse = Float32Array.from(offset);
  const axis = (n, m) => {
    const i0 = new Int32Array(n);
    const i1 = new Int32Array(n);
    const t = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const pos = Math.min(Math.max((i + 0.5) / f - 0.5, 0), m - 1);
      i0[i] = Math.min(Math.trunc(pos), m - 1);
      i1[i] = Math.min(i0[i] + 1, m - 1);
      t[i] = pos - i0[i];
    }
    return { i0, i1, t };
  };
  const ay = axis(h, H);
  const ax = axis(w, W);
  const line = new Float32Array(W * C); // the coarse grid interpolated to one output row
  for (let yy = 0; yy < h; yy++) {
    const o0 = ay.i0[yy] * W * C;
    const o1 = ay.i1[yy] * W * C;
    const t = ay.t[yy];
    for (let i = 0; i < W * C; i++) line[i] = coarse[o0 + i] * (1 - t) + coarse[o1 + i] * t;
    for (let xx = 0; xx < w; xx++) {
      const a = ax.i0[xx] * C;
      const b = ax.i1[xx] * C;
      const u = ax.t[xx];
      const o = (yy * w + xx) * C;
      for (let k = 0; k < C; k++)
        y[o + k] = Math.min(1, Math.max(0, y[o + k] + (line[a + k] * (1 - u) + line[b + k] * u)));
    }
  }
  return y;
}

// -- the generator ----------------------------------------------------------------------------

/** What the page runs on, said plainly: backend, threads, and why anything fell back. */
function configureWasm(ort, options, log) {
  let threads = options.threads ?? 0; // 0: onnxruntime-web's default
  if (threads > 1 && !IS_NODE && !globalThis.crossOriginIsolated) {
    log(
      `threads unavailable: the page is not cross-origin isolated (serve it with ` +
        `Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: ` +
        `require-corp); running on 1 thread instead of ${threads}`,
    );
    threads = 1;
  }
  if (threads) ort.env.wasm.numThreads = threads;
  if (options.wasmPaths) ort.env.wasm.wasmPaths = options.wasmPaths;
  return threads;
}

export class Generator {
  /** Load a model from its manifest (URL, path in Node, or the parsed object with `base`):
   * the model's and golden samples' sha256 are checked against it before use. Options:
   * threads, backend ("wasm" or "webgpu": webgpu falls back to wasm, saying why, where the
   * device has none), tile (null: auto, 0: whole, N: tiles of N pixels), overlap, log. */
  static async load(ort, manifest, options = {}) {
    const log = options.log ?? ((line) => console.warn(`edgegen: ${line}`));
    let base = options.base;
    if (typeof manifest === "string") {
      const where = manifest;
      // a path in Node (not a URL: a scheme has two letters or more, "C:" is a drive)
      if (IS_NODE && !options.base && !/^[a-z][a-z0-9+.-]+:/i.test(manifest)) {
        const { pathToFileURL } = await import("node:url");
        base = pathToFileURL(manifest).href;
      } else {
        base = new URL(manifest, options.base ?? globalThis.location?.href).href;
      }
      const text = new TextDecoder().decode(await readBytes(base));
      try {
        manifest = JSON.parse(text);
      } catch {
        throw new EdgegenError(`${where} is not JSON`);
      }
    }
    if (!manifest || typeof manifest.file !== "string" || typeof manifest.sha256 !== "string") {
      throw new EdgegenError("the manifest names no model file and sha256");
    }
    const modelBytes = await readBytes(manifest.file, base);
    const actual = await sha256Hex(modelBytes);
    if (actual !== manifest.sha256) {
      throw new EdgegenError(
        `${manifest.file}: sha256 ${actual.slice(0, 12)}... does not match its manifest ` +
          `(${manifest.sha256.slice(0, 12)}...): the file changed after export`,
      );
    }
    const spec = checkSpec(manifest.spec, manifest.file);
    let backend = options.backend ?? "wasm";
    if (backend === "webgpu") {
      const adapter = globalThis.navigator?.gpu ? await navigator.gpu.requestAdapter() : null;
      if (!adapter) {
        log("WebGPU unavailable on this device (no adapter); running on wasm");
        backend = "wasm";
      }
    } else if (backend !== "wasm") {
      throw new EdgegenError(`backend ${backend} is not one of wasm, webgpu`);
    }
    let threads = configureWasm(ort, options, log);
    let session;
    try {
      session = await ort.InferenceSession.create(modelBytes, {
        executionProviders: [backend],
        graphOptimizationLevel: "all",
      });
    } catch (err) {
      throw new EdgegenError(`onnxruntime-web cannot load ${manifest.file}: ${firstLine(err)}`);
    }
    threads = ort.env.wasm.numThreads || threads; // its default, once it has chosen one
    return new Generator(ort, session, manifest, spec, base, {
      ...options,
      backend,
      threads,
      log,
    });
  }

  constructor(ort, session, manifest, spec, base, options) {
    this.ort = ort;
    this.session = session;
    this.manifest = manifest;
    this.spec = spec;
    this.base = base;
    this.tile = options.tile === undefined ? null : options.tile;
    this.overlap = options.overlap ?? defaultOverlap(spec.receptive_field, spec.pad_multiple);
    this.log = options.log;
    // As the Python Generator: on for a model whose spec says it removes Gaussian noise.
    const denoiser = spec.scale === 1 && spec.in_channels === spec.out_channels;
    this.matchMeans =
      options.matchMeans ?? (denoiser && spec.task === "denoise" && spec.degradation?.kind === "gaussian_noise");
    if (this.matchMeans && !denoiser) {
      throw new EdgegenError(`${manifest.file}: matchMeans needs a model whose output matches its input`);
    }
    this.info = {
      runtime: "onnxruntime-web",
      version: ort.env.versions?.web ?? ort.env.versions?.common ?? "?",
      backend: options.backend,
      threads: options.threads,
      crossOriginIsolated: Boolean(globalThis.crossOriginIsolated),
      precision: manifest.precision ?? spec.precision,
      model: manifest.file,
    };
    this.inputName = session.inputNames[0];
    this.outputName = session.outputNames[0];
    this._warnedTiling = false;
  }

  /** The model's raw output for a float32 batch in its own layout (sizes a multiple of its
   * pad multiple): {data, dims}. */
  async infer(data, dims) {
    const tensor = new this.ort.Tensor("float32", data, dims);
    let results;
    try {
      results = await this.session.run({ [this.inputName]: tensor });
    } catch (err) {
      throw new EdgegenError(
        `${this.manifest.file} failed at a ${dims.join("x")} input: ${firstLine(err)}`,
      );
    }
    const out = results[this.outputName];
    const outData = out.data instanceof Float32Array ? out.data : Float32Array.from(out.data);
    return { data: outData, dims: out.dims.map(Number) };
  }

  /** NCHW float32 in the model's range -> NCHW output, padded and cropped back. */
  async runPadded(data, dims) {
    const { spec } = this;
    const [, , h, w] = dims;
    const padded = padToMultiple(data, dims, spec.pad_multiple);
    let y;
    if (spec.layout === "NHWC") {
      const t = transpose(padded.data, padded.dims, true);
      const r = await this.infer(t.data, t.dims);
      y = transpose(r.data, r.dims, false);
    } else {
      y = await this.infer(padded.data, padded.dims);
    }
    const s = spec.scale;
    const [n, , H, W] = padded.dims;
    const expected = [n, spec.out_channels, H * s, W * s];
    if (y.dims.join() !== expected.join()) {
      throw new EdgegenError(
        `${this.manifest.file}: output shape ${y.dims.join("x")} does not match the spec ` +
          `(${expected.join("x")})`,
      );
    }
    for (let i = 0; i < y.data.length; i++) {
      if (!Number.isFinite(y.data[i])) {
        throw new EdgegenError(`${this.manifest.file} output NaN or inf values; nothing written`);
      }
    }
    if (H === h && W === w) return y;
    const C = spec.out_channels;
    const oh = h * s;
    const ow = w * s;
    const out = new Float32Array(n * C * oh * ow);
    for (let p = 0; p < n * C; p++)
      for (let yy = 0; yy < oh; yy++)
        out.set(
          y.data.subarray((p * H * s + yy) * W * s, (p * H * s + yy) * W * s + ow),
          (p * oh + yy) * ow,
        );
    return { data: out, dims: [n, C, oh, ow] };
  }

  /** HWC float32 crop in [0, 1] with the model's input channels -> HWC float32 output in
   * [0, 1] units (not clipped). */
  async runHWC(image, h, w) {
    const { spec } = this;
    const c = spec.in_channels;
    const [lo, hi] = spec.value_range;
    const scaleRange = lo !== 0 || hi !== 1;
    const a = f32(hi - lo);
    const b = f32(lo);
    const x = new Float32Array(c * h * w);
    for (let y = 0; y < h; y++)
      for (let xx = 0; xx < w; xx++)
        for (let ch = 0; ch < c; ch++) {
          const src = spec.color_order === "BGR" ? c - 1 - ch : ch;
          let v = image[(y * w + xx) * c + src];
          if (scaleRange) v = f32(f32(v * a) + b);
          x[(ch * h + y) * w + xx] = v;
        }
    const r = await this.runPadded(x, [1, c, h, w]);
    const [, C, oh, ow] = r.dims;
    const out = new Float32Array(oh * ow * C);
    for (let ch = 0; ch < C; ch++) {
      const dst = spec.color_order === "BGR" ? C - 1 - ch : ch;
      for (let i = 0; i < oh * ow; i++) {
        let v = r.data[ch * oh * ow + i];
        if (scaleRange) v = f32(f32(v - b) / a);
        out[i * C + dst] = v;
      }
    }
    return out;
  }

  tileFor(h, w) {
    if (this.tile === null) {
      const big = h * w > AUTO_TILE_PIXELS && !this.spec.global_field;
      return big ? AUTO_TILE : 0;
    }
    if (this.tile && (h > this.tile || w > this.tile)) {
      if (this.spec.global_field && !this._warnedTiling) {
        this._warnedTiling = true;
        const m = this.spec.tiled_max_lsb;
        this.log(
          `${this.manifest.file}: every output pixel depends on the whole image, so tiles ` +
            `change the output${m != null ? ` (export measured up to ${m} LSB)` : ""}; ` +
            `tile 0 runs whole images`,
        );
      }
      return this.tile;
    }
    return 0;
  }

  /** Run one image: {data: RGBA (Uint8ClampedArray, as ImageData holds it), width, height}.
   * Returns the same, `scale` times larger; alpha is carried (nearest-neighbour when scaled).
   * A gray model gets the luma (ITU-R 601, as Pillow's "L") and returns gray as RGB.
   * onProgress(done, total) is called after every tile. */
  async run(image, { onProgress } = {}) {
    const { spec } = this;
    const { width: w, height: h, data } = image;
    if (!(w > 0 && h > 0) || data.length !== w * h * 4) {
      throw new EdgegenError(`an image must be RGBA ${w}x${h}: got ${data.length} values`);
    }
    const c = spec.in_channels;
    const unit = f32(1 / 255);
    const color = new Float32Array(h * w * c);
    for (let i = 0; i < h * w; i++) {
      if (c === 3) {
        for (let ch = 0; ch < 3; ch++) color[i * 3 + ch] = f32(data[i * 4 + ch] * unit);
      } else {
        const luma = Math.floor(
          (data[i * 4] * 19595 + data[i * 4 + 1] * 38470 + data[i * 4 + 2] * 7471 + 0x8000) >>
            16,
        );
        color[i] = f32(luma * unit);
      }
    }
    const s = spec.scale;
    const C = spec.out_channels;
    const tile = this.tileFor(h, w);
    let out;
    if (tile) {
      const pm = spec.pad_multiple;
      const t = roundUp(tile, pm);
      const overlap = roundUp(this.overlap, pm);
      if (t <= overlap) {
        throw new EdgegenError(`tile (${t}) must be larger than the overlap (${overlap})`);
      }
      const margin = defaultMargin(spec.receptive_field, this.overlap);
      const rows = axisWeights(h, t, overlap, margin, s, pm);
      const cols = axisWeights(w, t, overlap, margin, s, pm);
      out = new Float32Array(h * s * w * s * C);
      const W = w * s;
      let done = 0;
      for (const [oy, ny, wy] of rows) {
        for (const [ox, nx, wx] of cols) {
          const y0 = oy / s;
          const x0 = ox / s;
          const ch = ny / s;
          const cw = nx / s;
          const crop = new Float32Array(ch * cw * c);
          for (let y = 0; y < ch; y++)
            crop.set(color.subarray(((y0 + y) * w + x0) * c, ((y0 + y) * w + x0 + cw) * c), y * cw * c);
          const r = await this.runHWC(crop, ch, cw);
          for (let y = 0; y < ny; y++)
            for (let x = 0; x < nx; x++) {
              const weight = f32(wy[y] * wx[x]);
              const o = ((oy + y) * W + ox + x) * C;
              for (let k = 0; k < C; k++) out[o + k] = out[o + k] + f32(r[(y * nx + x) * C + k] * weight);
            }
          done += 1;
          onProgress?.(done, rows.length * cols.length);
        }
      }
    } else {
      out = await this.runHWC(color, h, w);
      onProgress?.(1, 1);
    }
    if (this.matchMeans) matchMeans(color, out, h, w, C);
    const H = h * s;
    const W = w * s;
    const rgba = new Uint8ClampedArray(H * W * 4);
    for (let i = 0; i < H * W; i++) {
      for (let k = 0; k < 3; k++) {
        const v = Math.min(1, Math.max(0, out[i * C + (C === 3 ? k : 0)]));
        rgba[i * 4 + k] = rint(f32(v * 255));
      }
      const sy = Math.floor(Math.floor(i / W) / s);
      const sx = Math.floor((i % W) / s);
      rgba[i * 4 + 3] = data[(sy * w + sx) * 4 + 3];
    }
    return { data: rgba, width: W, height: H };
  }

  /** The golden samples export wrote for this model, checked against its manifest's sha256
   * and run here; the report says what failed (an empty `failures` passes). */
  async verify() {
    const entry = this.manifest.golden;
    if (!entry || typeof entry.file !== "string" || typeof entry.sha256 !== "string") {
      throw new EdgegenError(`unverifiable: ${this.manifest.file}'s manifest names no golden file`);
    }
    const bytes = await readBytes(entry.file, this.base);
    const actual = await sha256Hex(bytes);
    if (actual !== entry.sha256) {
      throw new EdgegenError(
        `golden samples ${entry.file}: sha256 ${actual.slice(0, 12)}... does not match the ` +
          `manifest (${entry.sha256.slice(0, 12)}...): they changed after export`,
      );
    }
    const arrays = await readNpz(bytes, entry.file);
    const meta = JSON.parse(new TextDecoder().decode(arrays.get("meta").data));
    const tolerance = meta.tolerance ?? {};
    for (const [key, value] of Object.entries(tolerance)) {
      if (value === null) continue;
      const [lo, hi] = TOLERANCE_BOUNDS[key] ?? [-Infinity, Infinity];
      if (!Number.isFinite(value) || value < lo || value > hi) {
        throw new EdgegenError(`unverifiable: ${entry.file} has a tolerance ${key} = ${value}`);
      }
    }
    if (TORCH_RELATIVE.every((k) => tolerance[k] == null)) {
      throw new EdgegenError(`unverifiable: ${entry.file} carries no limit a device can check`);
    }
    const report = {
      model: this.manifest.file,
      precision: meta.precision,
      runtime: this.info,
      tolerance: Object.fromEntries(TORCH_RELATIVE.map((k) => [k, tolerance[k] ?? null])),
      rows: [],
      failures: [],
      notes: [],
    };
    if (tolerance.max_gt_psnr_drop != null) {
      report.notes.push("max_gt_psnr_drop needs ground truth: not checked on the device");
    }
    const groups = new Map();
    for (let k = 0; arrays.has(`input_${k}`); k++) {
      const input = arrays.get(`input_${k}`);
      const ref = arrays.get(`output_${k}`);
      const size = meta.samples?.[k]?.size ?? "?";
      let y;
      if (this.spec.layout === "NHWC") {
        const t = transpose(input.data, input.shape, true);
        const r = await this.infer(t.data, t.dims);
        y = transpose(r.data, r.dims, false);
      } else {
        y = await this.infer(input.data, input.shape);
      }
      if (y.dims.join() !== ref.shape.join()) {
        report.failures.push(`${size}: output shape ${y.dims.join("x")}, torch ${ref.shape.join("x")}`);
        continue;
      }
      if (!y.data.every(Number.isFinite)) {
        report.failures.push(`${size}: inf/NaN in the output`);
        continue;
      }
      if (!groups.has(size)) groups.set(size, []);
      groups.get(size).push([this._image(y.data), this._image(ref.data)]);
    }
    for (const [size, pairs] of groups) {
      let max = 0;
      let over = 0;
      let sq = 0;
      let count = 0;
      for (const [o, r] of pairs) {
        for (let i = 0; i < o.length; i++) {
          const d = Math.abs(f32(o[i] - r[i]));
          if (d > max) max = d;
          if (f32(d * 255) > 1) over += 1;
          sq += d * d;
        }
        count += o.length;
      }
      const mse = sq / count;
      const stats = {
        size,
        images: pairs.length,
        max_lsb: max * 255,
        pct_over_1lsb: (over / count) * 100,
        psnr_vs_torch: mse <= 0 ? PSNR_CAP : Math.min(PSNR_CAP, 10 * Math.log10(1 / mse)),
      };
      report.rows.push(stats);
      const where = `${report.precision} at ${size}`;
      const t = report.tolerance;
      if (t.max_lsb != null && stats.max_lsb > t.max_lsb)
        report.failures.push(`${where}: max error ${stats.max_lsb.toFixed(4)} LSB > ${t.max_lsb} LSB`);
      if (t.max_pct_over_1lsb != null && stats.pct_over_1lsb > t.max_pct_over_1lsb)
        report.failures.push(
          `${where}: ${stats.pct_over_1lsb.toFixed(3)}% of values off by > 1 LSB > ${t.max_pct_over_1lsb}%`,
        );
      if (t.min_psnr_vs_torch != null && stats.psnr_vs_torch < t.min_psnr_vs_torch)
        report.failures.push(
          `${where}: PSNR vs torch ${stats.psnr_vs_torch.toFixed(2)} dB < ${t.min_psnr_vs_torch} dB`,
        );
    }
    report.passed = report.failures.length === 0;
    return report;
  }

  /** A raw NCHW output as the clipped [0, 1] values a person sees (order does not matter for
   * the statistics, so only the value range is undone). */
  _image(data) {
    const [lo, hi] = this.spec.value_range;
    const out = new Float32Array(data.length);
    const scaled = lo !== 0 || hi !== 1;
    for (let i = 0; i < data.length; i++) {
      const v = scaled ? f32(f32(data[i] - f32(lo)) / f32(hi - lo)) : data[i];
      out[i] = Math.min(1, Math.max(0, v));
    }
    return out;
  }

  async release() {
    await this.session.release?.();
  }
}

function firstLine(err) {
  const text = String(err?.message ?? err).trim();
  return text.split("\n")[0] || String(err);
}
