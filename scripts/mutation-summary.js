#!/usr/bin/env node
// The figures of the last complete mutation run of each file (reports/mutation/<file>.json, written
// by Stryker's JSON reporter; scripts/mutation.sh): mutants by status, the score, and every mutant
// that survived or had no test, with its place and replacement, for docs/mutation.md.
// Usage: node scripts/mutation-summary.js lib/unikernel-ami/handler/<file>.ts[:from-to] ...
const fs = require('fs');
const path = require('path');
const { reportName } = require('./mutation-stages');

const root = path.join(__dirname, '..');
const STATUSES = ['Killed', 'Timeout', 'Survived', 'NoCoverage', 'Ignored', 'RuntimeError', 'CompileError'];
const files = process.argv.slice(2);
const totals = Object.fromEntries(STATUSES.map((s) => [s, 0]));
let missing = 0;

const score = (c) => {
  const detected = c.Killed + c.Timeout;
  const valid = detected + c.Survived + c.NoCoverage;
  return valid === 0 ? 'n/a' : `${((100 * detected) / valid).toFixed(1)} %`;
};

for (const file of files) {
  // The report name stryker.config.mjs gives: the file's base name, and its line range if narrowed.
  const name = reportName(file);
  const reportPath = path.join(root, 'reports', 'mutation', `${name}.json`);
  if (!fs.existsSync(reportPath)) {
    console.log(`${file}: no report (${path.relative(root, reportPath)}): not run to its end yet`);
    missing++;
    continue;
  }
  const report = JSON.parse(fs.readFileSync(reportPath, 'utf8'));
  const counts = Object.fromEntries(STATUSES.map((s) => [s, 0]));
  const open = [];
  for (const [source, result] of Object.entries(report.files)) {
    for (const mutant of result.mutants) {
      counts[mutant.status] = (counts[mutant.status] ?? 0) + 1;
      if (mutant.status === 'Survived' || mutant.status === 'NoCoverage') {
        const at = mutant.location.start;
        open.push(`  ${mutant.status} ${source}:${at.line}:${at.column} ${mutant.mutatorName}: ${JSON.stringify(mutant.replacement ?? '')}`);
      }
    }
  }
  for (const s of STATUSES) totals[s] += counts[s];
  console.log(`${file}: score ${score(counts)}; ${STATUSES.map((s) => `${s} ${counts[s]}`).join(', ')}`);
  for (const line of open) console.log(line);
}
if (files.length > 1) {
  console.log(`all: score ${score(totals)}; ${STATUSES.map((s) => `${s} ${totals[s]}`).join(', ')}`);
}
process.exitCode = missing > 0 ? 1 : 0;
