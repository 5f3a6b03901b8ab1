// The TinyThinker OBQA chain (Recall; Analyze once per option; Summarize) on
// llama.cpp through node-llama-cpp's API, rendered like
// data/templates/obqa.json: "{question}\n{options}\nRecall:", options as
// "(A) text (B) text ...", Analyze "... Recall: {recall}\nAnalyze: For option
// {X},", Summarize "... Analyze: {joined}\nSummarize:" with the options'
// outputs joined as "For option X, {output}." Greedy, no stop strings: each
// call generates exactly its cap (default 40/30/12) unless the model emits EOS,
// so every runner does the same work (bench/obqa-capped.json is our side).
//
// usage: node bench/llamacpp_chain.mjs --pkg DIR --model FILE --data OBQA.jsonl
//          [--limit 3] [--threads 2] [--mode fresh|reuse] [--caps 40,30,12] [--ctx 1024]
// fresh: every call starts from an empty sequence (clearHistory) and prefills its
//        whole prompt; reuse: one sequence kept between calls, only the part of
//        the prompt after the longest common token prefix is evaluated.
// Prints one tab-separated key=value row: bench=chain runner=llamacpp-<mode>
// threads= questions= s_per_question= tokens_generated= tokens_prefilled= variant=
import fs from "node:fs";
import path from "node:path";
import {pathToFileURL} from "node:url";

function parseArgs(argv) {
  const o = {limit: 3, threads: 2, mode: "fresh", caps: [40, 30, 12], ctx: 1024};
  for (let i = 2; i < argv.length; i += 2) {
    const k = argv[i], v = argv[i + 1];
    if (v === undefined) throw new Error(`${k}: missing value`);
    if (k === "--pkg") o.pkg = v;
    else if (k === "--model") o.model = v;
    else if (k === "--data") o.data = v;
    else if (k === "--limit") o.limit = Number(v);
    else if (k === "--threads") o.threads = Number(v);
    else if (k === "--mode") o.mode = v;
    else if (k === "--caps") o.caps = v.split(",").map(Number);
    else if (k === "--ctx") o.ctx = Number(v);
    else throw new Error(`${k}: unknown option`);
  }
  if (!o.pkg || !o.model || !o.data) throw new Error("--pkg DIR, --model FILE and --data FILE are required");
  if (!["fresh", "reuse"].includes(o.mode)) throw new Error(`--mode ${o.mode}: fresh or reuse`);
  return o;
}

function loadObqa(file, limit) {
  return fs.readFileSync(file, "utf8").split("\n").filter((l) => l.trim()).slice(0, limit).map((l) => {
    const j = JSON.parse(l);
    return {question: j.question.stem, options: j.question.choices.map((c) => c.text)};
  });
}

const letter = (i) => String.fromCharCode(65 + i);

async function main() {
  const o = parseArgs(process.argv);
  const entry = path.join(o.pkg, "node_modules", "node-llama-cpp", "dist", "index.js");
  const {getLlama, LlamaLogLevel} = await import(pathToFileURL(entry).href);
  let variant = "unknown";
  const llama = await getLlama({
    gpu: false, build: "never", maxThreads: 0, logLevel: LlamaLogLevel.debug,
    logger: (level, msg) => {
      const m = /libggml-cpu-?([\w.-]*)\.so/.exec(msg);
      if (m) variant = m[1] || "cpu";
    },
  });
  const model = await llama.loadModel({modelPath: o.model, gpuLayers: 0});
  const ctx = await model.createContext({contextSize: o.ctx, sequences: 1, threads: o.threads, batchSize: 512});
  const seq = ctx.getSequence();
  let generated = 0, prefilled = 0;

  // one call: prompt text -> (cap tokens) output text
  async function call(prompt, cap) {
    const toks = model.tokenize(prompt, false);
    const bos = model.tokens.bos;
    const input = bos != null ? [bos, ...toks] : toks;
    let keep = 0;
    if (o.mode === "reuse") {
      const ctxToks = seq.contextTokens;
      while (keep < ctxToks.length && keep < input.length - 1 && ctxToks[keep] === input[keep]) keep++;
      if (keep < seq.nextTokenIndex) await seq.eraseContextTokenRanges([{start: keep, end: seq.nextTokenIndex}]);
    } else {
      await seq.clearHistory();
    }
    prefilled += input.length - keep;
    const out = [];
    for await (const t of seq.evaluate(input.slice(keep), {temperature: 0})) {
      out.push(t);
      if (out.length >= cap) break;
    }
    generated += out.length;
    return model.detokenize(out);
  }

  const qs = loadObqa(o.data, o.limit);
  const t0 = performance.now();
  for (const q of qs) {
    const head = `${q.question}\n${q.options.map((t, i) => `(${letter(i)}) ${t}`).join(" ")}\n`;
    const recall = (await call(`${head}Recall:`, o.caps[0])).trim();
    const analyses = [];
    for (let i = 0; i < q.options.length; i++) {
      const a = (await call(`${head}Recall: ${recall}\nAnalyze: For option ${letter(i)},`, o.caps[1])).trim();
      analyses.push(`For option ${letter(i)}, ${a}${a.endsWith(".") ? "" : "."}`);
    }
    await call(`${head}Recall: ${recall}\nAnalyze: ${analyses.join(" ")}\nSummarize:`, o.caps[2]);
  }
  const s = (performance.now() - t0) / 1e3;
  console.log([`bench=chain`, `runner=llamacpp-${o.mode}`, `threads=${o.threads}`, `questions=${qs.length}`,
               `s_per_question=${(s / qs.length).toFixed(3)}`, `tokens_generated=${generated}`,
               `tokens_prefilled=${prefilled}`, `variant=${variant}`].join("\t"));
  await ctx.dispose();
  await model.dispose();
}

main().catch((e) => {
  console.error(`llamacpp_chain.mjs: ${e.message}`);
  process.exit(1);
});
