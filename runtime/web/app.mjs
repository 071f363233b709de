// The page of an edgegen web bundle: pick a model, check it on this device against its golden
// samples, run a photo. Query parameters drive it without a person (CI, a kiosk):
//   ?model=N|NAME  &threads=N  &tile=N  &photo=URL  &repeat=N (run the photo N times: timings)
//   &report=URL (same origin: the result is POSTed there as JSON: what ran, the golden check,
//   timings, the output's RGBA pixels in base64)

import { EdgegenError, Generator, sha256Hex } from "./edgegen.mjs";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const logs = [];

function log(line) {
  logs.push(line);
  $("log").textContent = logs.join("\n");
}

function status(text, cls = "") {
  $("status").textContent = text;
  $("status").className = cls;
}

function decodeImage(bitmap) {
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(bitmap, 0, 0);
  return ctx.getImageData(0, 0, bitmap.width, bitmap.height);
}

async function loadPhoto(blob) {
  // The file's own pixels: no colour conversion and no premultiplied alpha on the way in.
  const bitmap = await createImageBitmap(blob, {
    colorSpaceConversion: "none",
    premultiplyAlpha: "none",
  });
  return decodeImage(bitmap);
}

function show(canvas, image) {
  canvas.width = image.width;
  canvas.height = image.height;
  canvas.getContext("2d").putImageData(new ImageData(image.data, image.width, image.height), 0, 0);
}

function verifyTable(report) {
  const rows = report.rows
    .map(
      (r) =>
        `<tr><td>${r.size}</td><td>${r.images}</td><td>${r.max_lsb.toFixed(3)}</td>` +
        `<td>${r.pct_over_1lsb.toFixed(3)}</td><td>${r.psnr_vs_torch.toFixed(2)}</td></tr>`,
    )
    .join("");
  const limits = Object.entries(report.tolerance)
    .filter(([, v]) => v !== null)
    .map(([k, v]) => `${k} ${v}`)
    .join(", ");
  const verdict = report.passed
    ? `<span class="pass">PASS</span>`
    : `<span class="fail">FAIL</span>: ${report.failures.join("; ")}`;
  return (
    `<p>${report.model} (${report.precision}) on onnxruntime-web ${report.runtime.version}, ` +
    `${report.runtime.backend}, ${report.runtime.threads} thread(s); tolerance: ${limits}</p>` +
    `<table><tr><th>size</th><th>imgs</th><th>max LSB</th><th>&gt;1LSB %</th>` +
    `<th>PSNR/torch</th></tr>${rows}</table><p>${verdict}</p>`
  );
}

function base64(bytes) {
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}

async function report(result) {
  const target = params.get("report");
  if (!target) return;
  const url = new URL(target, location.href);
  if (url.origin !== location.origin) {
    log(`report not sent: ${url.origin} is not this page's origin`);
    return;
  }
  await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ ...result, logs }),
  });
}

let index = null;
let ort = null;
let generator = null;

async function open(choice) {
  const entry = index.models[choice];
  const threads = Number($("threads").value) || 1;
  const tileParam = params.get("tile");
  status(`loading ${entry.name}…`);
  await generator?.release();
  generator = null;
  const t0 = performance.now();
  generator = await Generator.load(ort, entry.manifest, {
    threads,
    tile: tileParam === null ? null : Number(tileParam),
    log,
  });
  const loadMs = performance.now() - t0;
  status(`checking ${entry.name} against its golden samples…`);
  const t1 = performance.now();
  const check = await generator.verify();
  const verifyMs = performance.now() - t1;
  $("verify").innerHTML = verifyTable(check);
  status(
    check.passed ? `${entry.name}: verified on this device` : `${entry.name}: verification failed`,
    check.passed ? "pass" : "fail",
  );
  $("run").disabled = false;
  return { check, loadMs, verifyMs };
}

async function run(image) {
  show($("before"), image);
  $("progress").value = 0;
  status("running…");
  const t0 = performance.now();
  const out = await generator.run(image, {
    onProgress: (done, total) => {
      $("progress").max = total;
      $("progress").value = done;
    },
  });
  const runMs = performance.now() - t0;
  show($("after"), out);
  status(`done in ${(runMs / 1000).toFixed(2)} s (${out.width}×${out.height})`, "pass");
  $("after").toBlob((blob) => {
    const link = $("download");
    link.href = URL.createObjectURL(blob);
    link.hidden = false;
  }, "image/png");
  return { out, runMs };
}

async function main() {
  const response = await fetch("edgegen-web.json");
  if (!response.ok) throw new EdgegenError(`edgegen-web.json: HTTP ${response.status}`);
  index = await response.json();
  document.title = $("title").textContent = index.title;
  ort = await import(new URL(index.onnxruntime_web.module, location.href).href);
  const cores = navigator.hardwareConcurrency || 1;
  $("threads").value = params.get("threads") ?? Math.min(4, cores);
  $("what").textContent =
    `onnxruntime-web ${index.onnxruntime_web.version}; ` +
    (crossOriginIsolated
      ? "cross-origin isolated: WASM threads available"
      : "not cross-origin isolated: WASM runs on one thread");
  index.models.forEach((m, k) => $("model").add(new Option(m.name, String(k))));
  const wanted = params.get("model");
  let choice = 0;
  if (wanted !== null) {
    choice = /^\d+$/.test(wanted) ? Number(wanted) : index.models.findIndex((m) => m.name === wanted);
    if (!(choice >= 0 && choice < index.models.length)) {
      throw new EdgegenError(`no model ${wanted} in this page`);
    }
  }
  $("model").value = String(choice);
  const opened = await open(choice);
  $("model").onchange = () => open(Number($("model").value)).catch(fail);
  $("controls").onsubmit = (event) => {
    event.preventDefault();
    const file = $("photo").files[0];
    if (!file) return status("choose a photo first");
    loadPhoto(file).then(run).catch(fail);
  };
  const photo = params.get("photo");
  if (photo === null) return report({ info: generator.info, verify: opened.check });
  const fetched = await fetch(photo);
  if (!fetched.ok) throw new EdgegenError(`photo ${photo}: HTTP ${fetched.status}`);
  const image = await loadPhoto(await fetched.blob());
  const runs = [];
  let out;
  for (let k = 0; k < Math.max(1, Number(params.get("repeat") ?? 1)); k++) {
    const result = await run(image);
    out = result.out;
    runs.push(result.runMs);
  }
  await report({
    info: generator.info,
    verify: opened.check,
    timings: { load_ms: opened.loadMs, verify_ms: opened.verifyMs, runs_ms: runs },
    input: { width: image.width, height: image.height, sha256: await sha256Hex(image.data) },
    output: { width: out.width, height: out.height, rgba: base64(out.data) },
  });
}

function fail(err) {
  const text = err instanceof EdgegenError ? err.message : `${err?.message ?? err}`;
  status(text.split("\n")[0], "fail");
  log(`error: ${text}`);
  report({ error: text.split("\n")[0] }).catch(() => {});
}

main().catch(fail);
