// The web runner's end in a browser (edgegen.runners.browser): fetch a frame from the server
// that served this page, answer it, repeat until the server says stop (204). The first frame
// loads the model from its manifest; each next one is a batch. Frames as in node_runner.mjs.

import { EdgegenError, Generator } from "./edgegen.mjs";

const ort = await import("./ort/ort.wasm.min.mjs");
const logs = [];

function parse(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = view.getUint32(0, true);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(4, 4 + n)));
  const m = view.getUint32(4 + n, true);
  return { header, payload: bytes.slice(8 + n, 8 + n + m) };
}

async function reply(header, payload = new Uint8Array(0)) {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const body = new Uint8Array(8 + json.length + payload.byteLength);
  const view = new DataView(body.buffer);
  view.setUint32(0, json.length, true);
  body.set(json, 4);
  view.setUint32(4 + json.length, payload.byteLength, true);
  body.set(new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength), 8 + json.length);
  await fetch("/reply", { method: "POST", body });
}

let generator = null;
for (;;) {
  const response = await fetch("/next", { cache: "no-store" });
  if (response.status !== 200) break;
  const { header, payload } = parse(new Uint8Array(await response.arrayBuffer()));
  try {
    if (generator === null) {
      generator = await Generator.load(ort, header.manifest, {
        base: location.href,
        threads: header.threads ?? 0,
        log: (line) => logs.push(line),
      });
      await reply({ info: { ...generator.info, logs } });
      continue;
    }
    const out = await generator.infer(new Float32Array(payload.buffer), header.dims);
    await reply({ dims: out.dims }, out.data);
  } catch (err) {
    const text = err instanceof EdgegenError ? err.message : String(err?.message ?? err);
    await reply({ error: text.trim().split("\n")[0] });
  }
}
