// Single-threaded encode throughput of npm tokenizers 0.23.2 (Hugging Face tokenizers' Node binding) on the
// same corpora and tokenizer files as bench/bench_tokenizer.cc. Usage (from the repository root):
//   npm install --prefix /tmp/tok-bench tokenizers@0.23.2
//   RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false NODE_PATH=/tmp/tok-bench/node_modules node bench/tokenizer_npm.js [names...]
const {Tokenizer} = require('tokenizers');
const fs = require('fs');
const zlib = require('zlib');
const dir = process.env.LLADA2_TOK_DATA || 'tests/data/tok';
const names = process.argv.length > 2 ? process.argv.slice(2) : ['ling-synth', 'qwen3', 'llama3', 'deepseek_v3', 'gemma3'];

function texts(name) {
  const raw = zlib.gunzipSync(fs.readFileSync(`${dir}/golden/${name}.public.jsonl.gz`)).toString('utf8');
  return raw.split('\n').filter(l => l.length).map(l => JSON.parse(l).text);
}
const path = name => name === 'ling-synth' ? `${dir}/ling-synth/tokenizer.json` : `${dir}/third_party/${name}/tokenizer.json`;

(async () => {
  for (const name of names) {
    const t0 = process.hrtime.bigint();
    const tok = Tokenizer.fromFile(path(name));
    const load = Number(process.hrtime.bigint() - t0) / 1e9;
    const xs = texts(name);
    const bytes = xs.reduce((a, s) => a + Buffer.byteLength(s, 'utf8'), 0);
    // one call per text, awaited in turn (what a single-threaded caller does)
    const run = async () => { let n = 0; for (const s of xs) n += (await tok.encode(s, null, {addSpecialTokens: true})).getLength(); return n; };
    await run();  // warm-up
    let best = Infinity, bestCpu = Infinity, tokens = 0;
    for (let r = 0; r < 5; r++) {
      const s = process.hrtime.bigint(), c = process.cpuUsage();
      tokens = await run();
      best = Math.min(best, Number(process.hrtime.bigint() - s) / 1e9);
      const u = process.cpuUsage(c);
      bestCpu = Math.min(bestCpu, (u.user + u.system) / 1e6);
    }
    // the whole corpus in one encodeBatch call (set RAYON_NUM_THREADS=1 to keep it on one core)
    let bestBatch = Infinity;
    for (let r = 0; r < 5; r++) {
      const s = process.hrtime.bigint();
      await tok.encodeBatch(xs, {addSpecialTokens: true});
      bestBatch = Math.min(bestBatch, Number(process.hrtime.bigint() - s) / 1e9);
    }
    console.log(`${name}: load ${load.toFixed(3)} s; ${(bytes / 1e6).toFixed(2)} MB, ${tokens} tokens; ` +
                `encode per text ${(bytes / 1e6 / best).toFixed(2)} MB/s (${(bytes / 1e6 / bestCpu).toFixed(2)} MB per CPU second); encodeBatch ${(bytes / 1e6 / bestBatch).toFixed(2)} MB/s`);
  }
})();
