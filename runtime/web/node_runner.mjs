// The web runtime for edgegen's runners: a model on onnxruntime-web (WASM) in Node, fed batches
// by the Python process that started it (edgegen.runners.web) over stdin/stdout.
//
//   node node_runner.mjs ORT_ENTRY
//
// Every message is a frame: a little-endian uint32 length and that much JSON, then a uint32
// length and that many payload bytes (float32 values, little-endian). The first request
// {manifest, base, threads} loads the model and is answered with {info} or {error}; each
// {dims} request with a payload is answered with {dims} and the output's values, or {error}.
// stdout carries frames only: anything onnxruntime-web prints goes to stderr.

import { pathToFileURL } from "node:url";
import { EdgegenError, Generator } from "./edgegen.mjs";

console.log = console.error; // stdout is the frame channel
console.info = console.error;

async function* frames(stream) {
  const chunks = stream[Symbol.asyncIterator]();
  let buffer = Buffer.alloc(0);
  const read = async (n) => {
    while (buffer.length < n) {
      const { value, done } = await chunks.next();
      if (done) return null;
      buffer = Buffer.concat([buffer, value]);
    }
    const head = buffer.subarray(0, n);
    buffer = buffer.subarray(n);
    return head;
  };
  const part = async () => {
    const length = await read(4);
    return length === null ? null : read(length.readUInt32LE(0));
  };
  for (;;) {
    const header = await part();
    const payload = header === null ? null : await part();
    if (payload === null) return;
    yield { header: JSON.parse(header.toString("utf8")), payload };
  }
}

function send(header, payload = new Uint8Array(0)) {
  const json = Buffer.from(JSON.stringify(header), "utf8");
  const lengths = Buffer.alloc(4);
  lengths.writeUInt32LE(json.length, 0);
  const plen = Buffer.alloc(4);
  plen.writeUInt32LE(payload.byteLength, 0);
  const body = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  return new Promise((resolve) => process.stdout.write(Buffer.concat([lengths, json, plen, body]), resolve));
}

function message(err) {
  const text = err instanceof EdgegenError ? err.message : String(err?.message ?? err);
  return text.trim().split("\n")[0];
}

const ort = await import(pathToFileURL(process.argv[2]).href);
ort.env.logLevel = "error";
let generator = null;
const logs = [];
for await (const { header, payload } of frames(process.stdin)) {
  try {
    if (generator === null) {
      generator = await Generator.load(ort, header.manifest, {
        base: header.base,
        threads: header.threads ?? 0,
        log: (line) => logs.push(line),
      });
      await send({ info: { ...generator.info, logs } });
      continue;
    }
    const values = new Float32Array(payload.buffer.slice(payload.byteOffset, payload.byteOffset + payload.byteLength));
    const started = performance.now();
    const out = await generator.infer(values, header.dims);
    await send({ dims: out.dims, ms: performance.now() - started }, out.data);
  } catch (err) {
    await send({ error: message(err) });
    if (generator === null) break;
  }
}
