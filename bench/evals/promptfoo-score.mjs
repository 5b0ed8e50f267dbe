// The peer side of bench/evals: promptfoo's own assertion engine
// (assertions.runAssertions, promptfoo's public API) scoring the same
// generated suite and outputs that bench/evals scores with package evals.
// bench/evals writes the suite as JSON Lines of promptfoo test cases and the
// outputs, runs this script with the promptfoo that .ci/install-tools.sh
// installs into .tools/promptfoo, and reads one JSON line back:
// {"items": N, "passed": P, "seconds": S}.
//
// Usage: node promptfoo-score.mjs PROMPTFOO_DIR TESTS.jsonl
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import path from 'node:path';

const [dir, testsFile] = process.argv.slice(2);
const require = createRequire(path.join(dir, 'package.json'));
const promptfoo = require('promptfoo');
const runAssertions = promptfoo.assertions.runAssertions;

const lines = readFileSync(testsFile, 'utf8').split('\n').filter((l) => l.length > 0);
const cases = lines.map((l) => JSON.parse(l));
let passed = 0;
const start = process.hrtime.bigint();
for (const c of cases) {
  const r = await runAssertions({
    test: { vars: {}, assert: c.assert },
    providerResponse: { output: c.output },
    latencyMs: c.latencyMs,
  });
  if (r.pass) passed++;
}
const seconds = Number(process.hrtime.bigint() - start) / 1e9;
process.stdout.write(JSON.stringify({ items: cases.length, passed, seconds }) + '\n');
