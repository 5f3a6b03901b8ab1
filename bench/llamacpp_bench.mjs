// llama.cpp on a GGUF file through node-llama-cpp's API (the npm package ships
// prebuilt llama.cpp libraries per CPU variant, no llama-bench binary), timed
// like bench_engine: decode = 64 tokens one at a time after a 16-token prompt,
// prefill = 256 tokens in one call; best and median of reps, greedy.
//
// usage: node bench/llamacpp_bench.mjs --pkg DIR --model FILE [--threads 1,2]
//          [--reps 3] [--decode 64] [--prompt 16] [--prefill 256] [--vocab 32000]
//          [--what decode,prefill]
// DIR is where bench/llamacpp.sh installed node-llama-cpp (its node_modules).
// Prints tab-separated key=value rows: bench=llamacpp what= model= threads=
// tokens= tok_s= (best) tok_s_median= tok_s_all= variant= (the ggml CPU
// library llama.cpp chose) load=
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import {pathToFileURL} from "node:url";

function parseArgs(argv) {
  const o = {threads: [1, 2], reps: 3, decode: 64, prompt: 16, prefill: 256, vocab: 32000, what: ["decode", "prefill"]};
  for (let i = 2; i < argv.length; i += 2) {
    const k = argv[i], v = argv[i + 1];
    if (v === undefined) throw new Error(`${k}: missing value`);
    if (k === "--pkg") o.pkg = v;
    else if (k === "--model") o.model = v;
    else if (k === "--threads") o.threads = v.split(",").map(Number);
    else if (k === "--reps") o.reps = Number(v);
    else if (k === "--decode") o.decode = Number(v);
    else if (k === "--prompt") o.prompt = Number(v);
    else if (k === "--prefill") o.prefill = Number(v);
    else if (k === "--vocab") o.vocab = Number(v);
    else if (k === "--what") o.what = v.split(",");
    else throw new Error(`${k}: unknown option`);
  }
  if (!o.pkg || !o.model) throw new Error("--pkg DIR and --model FILE are required");
  if (!fs.existsSync(o.model)) throw new Error(`${o.model}: no such file`);
  return o;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const now = () => Number(process.hrtime.bigint()) / 1e9;

function row(fields) {
  console.log(Object.entries(fields).map(([k, v]) => `${k}=${v}`).join("\t"));
}

async function main() {
  const o = parseArgs(process.argv);
  const entry = path.join(o.pkg, "node_modules", "node-llama-cpp", "dist", "index.js");
  const {getLlama, LlamaLogLevel} = await import(pathToFileURL(entry).href);
  let variant = "unknown";
  const llama = await getLlama({
    gpu: false, build: "never", maxThreads: 0, logLevel: LlamaLogLevel.debug,
    logger: (level, msg) => { // ggml names the CPU library it loaded
      const m = /libggml-cpu-?([\w.-]*)\.so/.exec(msg);
      if (m) variant = m[1] || "cpu";
    },
  });
  const model = await llama.loadModel({modelPath: o.model, gpuLayers: 0});
  const vocab = o.vocab;
  const toks = Array.from({length: o.prefill + o.prompt + o.decode + 1}, (_, i) => 1 + (i * 7919) % (vocab - 1));
  const name = path.basename(o.model);
  for (const th of o.threads) {
    const ctx = await model.createContext({contextSize: Math.max(512, o.prefill + 64), batchSize: Math.max(512, o.prefill),
                                           threads: th, sequences: 1});
    const seq = ctx.getSequence();
    if (o.what.includes("decode")) {
      const rates = [];
      for (let r = 0; r < o.reps; r++) {
        await seq.clearHistory();
        await seq.evaluateWithoutGeneratingNewTokens(toks.slice(0, o.prompt - 1));
        const it = seq.evaluate([toks[o.prompt - 1]], {temperature: 0});
        await it.next(); // the last prompt token
        let n = 0;
        const t0 = now();
        for (; n < o.decode; n++) if ((await it.next()).done) break;
        rates.push(n / (now() - t0));
        await it.return();
      }
      row({bench: "llamacpp", what: "decode", model: name, threads: th, tokens: o.decode,
           tok_s: Math.max(...rates).toFixed(1), tok_s_median: median(rates).toFixed(1),
           tok_s_all: rates.map((x) => x.toFixed(1)).join(","), variant, load: os.loadavg()[0].toFixed(2)});
    }
    if (o.what.includes("prefill")) {
      const rates = [];
      for (let r = 0; r < o.reps; r++) {
        await seq.clearHistory();
        const t0 = now();
        await seq.evaluateWithoutGeneratingNewTokens(toks.slice(0, o.prefill));
        rates.push(o.prefill / (now() - t0));
      }
      row({bench: "llamacpp", what: "prefill", model: name, threads: th, tokens: o.prefill,
           tok_s: Math.max(...rates).toFixed(1), tok_s_median: median(rates).toFixed(1),
           tok_s_all: rates.map((x) => x.toFixed(1)).join(","), variant, load: os.loadavg()[0].toFixed(2)});
    }
    await ctx.dispose();
  }
  await model.dispose();
  await llama.dispose();
}

main().catch((e) => {
  console.error(`llamacpp_bench: ${e.message}`);
  process.exit(1);
});
