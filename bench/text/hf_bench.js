'use strict';
// Reference speed of Hugging Face tokenizers (npm tokenizers@0.23.2, the
// oracle's package) on stoker's text corpus: encodeBatch in chunks of 1,000
// documents, no truncation, special tokens added, as BenchmarkEncodeCorpus
// does in Go.
//
//   RAYON_NUM_THREADS=1 NODE_PATH=$HOME/.cache/stoker-oracles/node/node_modules \
//     node bench/text/hf_bench.js preprocess/text/tokenizers/gpt2.json [corpus.txt.gz] [seconds]
//
// Prints one line: name, threads, MB/s, cpu-MB/s, docs/s: corpus bytes and
// documents per second of wall time, and corpus bytes per second of the
// process's CPU time (all its threads; comparable on a busy machine), each
// the best of the passes.
const fs = require('fs');
const zlib = require('zlib');
const path = require('path');
const tk = require('tokenizers');

async function main() {
  const [tokPath, corpusArg, secondsArg] = process.argv.slice(2);
  if (!tokPath) {
    console.error('usage: hf_bench.js TOKENIZER.json [CORPUS.txt.gz] [SECONDS]');
    process.exit(2);
  }
  const corpusPath = corpusArg || path.join(__dirname, '../../preprocess/text/testdata/corpus.txt.gz');
  const seconds = parseFloat(secondsArg || '10');
  const raw = zlib.gunzipSync(fs.readFileSync(corpusPath));
  const text = raw.toString('utf8');
  const lines = text.split('\n');
  if (lines.length && lines[lines.length - 1] === '') lines.pop();
  const bytes = raw.length - lines.length; // without the newlines, as the Go benchmark counts
  const tok = tk.Tokenizer.fromFile(tokPath);
  const CHUNK = 1000;
  const pass = async () => {
    for (let s = 0; s < lines.length; s += CHUNK) {
      await tok.encodeBatch(lines.slice(s, s + CHUNK), { addSpecialTokens: true });
    }
  };
  await pass(); // warm up
  let best = Infinity;
  let bestCPU = Infinity;
  const start = process.hrtime.bigint();
  let passes = 0;
  while (passes < 2 || Number(process.hrtime.bigint() - start) / 1e9 < seconds) {
    const t0 = process.hrtime.bigint();
    const c0 = process.cpuUsage();
    await pass();
    const c = process.cpuUsage(c0);
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e9);
    bestCPU = Math.min(bestCPU, (c.user + c.system) / 1e6);
    passes++;
  }
  const threads = process.env.RAYON_NUM_THREADS || 'default';
  console.log(`hf ${path.basename(tokPath, '.json')} threads=${threads} ${(bytes / best / 1e6).toFixed(2)} MB/s ` +
    `${(bytes / bestCPU / 1e6).toFixed(2)} cpu-MB/s ${(lines.length / best).toFixed(0)} docs/s passes=${passes}`);
}
main().catch((e) => { console.error(e); process.exit(1); });
