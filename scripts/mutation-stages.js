#!/usr/bin/env node
// The two stages of a mutation run of one file (stryker.config.mjs UNIT_TESTS, scripts/mutation.sh):
//   name FILE[:from-to]                 the reports' base name, as stryker.config.mjs gives it
//   rest UNIT.json MUTANTS.json         writes the Stryker ranges of the mutants the unit stage did
//                                       not detect (for MUTATION_MUTANTS); prints how many
//   merge UNIT.json [REST.json] OUT.json  one report, in Stryker's JSON format: each mutant with the
//                                       unit stage's status if it detected it, else the rest stage's
const fs = require('fs');
const path = require('path');

const DETECTED = new Set(['Killed', 'Timeout']);
/** Neither stage tests these again: Stryker did not run them (Ignored), or they do not compile. */
const SETTLED = new Set([...DETECTED, 'Ignored', 'CompileError']);

const read = (file) => JSON.parse(fs.readFileSync(file, 'utf8'));
const keyOf = (m) => `${m.location.start.line}:${m.location.start.column}-${m.location.end.line}:${m.location.end.column} ${m.mutatorName} ${m.replacement ?? ''}`;

/** The reports' base name of FILE[:from-to], as stryker.config.mjs gives it (mutation-summary.js too). */
function reportName(file) {
  const [, source, from, to] = /^(.*\.ts)(?::(\d+)-(\d+))?$/.exec(file) ?? [undefined, file];
  return `${path.basename(source, '.ts')}${from ? `-${from}-${to}` : ''}`;
}

function rest(unitReport, output) {
  const ranges = [];
  for (const [file, result] of Object.entries(read(unitReport).files)) {
    for (const m of result.mutants) {
      if (!SETTLED.has(m.status)) {
        // The report's columns count from 1, Stryker's ranges from 0; the end is left one column
        // wide, so the range surely holds the mutant (another mutant inside it is tested again too).
        ranges.push(`${file}:${m.location.start.line}:${m.location.start.column - 1}-${m.location.end.line}:${m.location.end.column}`);
      }
    }
  }
  fs.writeFileSync(output, `${JSON.stringify([...new Set(ranges)], null, 2)}\n`);
  console.log(ranges.length);
}

function merge(unitReport, restReport, output) {
  const report = read(unitReport);
  const retested = new Map();
  if (restReport) {
    for (const [file, result] of Object.entries(read(restReport).files)) {
      for (const m of result.mutants) {
        retested.set(`${file} ${keyOf(m)}`, m);
      }
    }
  }
  for (const [file, result] of Object.entries(report.files)) {
    result.mutants = result.mutants.map((m) => {
      if (SETTLED.has(m.status)) {
        return m;
      }
      const again = retested.get(`${file} ${keyOf(m)}`);
      if (!again) {
        throw new Error(`${file} ${keyOf(m)}: ${m.status} in the unit stage, and not tested by the whole test set`);
      }
      return again;
    });
  }
  fs.writeFileSync(output, JSON.stringify(report));
}

module.exports = { reportName };

const [command, ...args] = require.main === module ? process.argv.slice(2) : ['library'];
if (command === 'library') {
  // Required by another script: no command to run.
} else if (command === 'name' && args.length === 1) {
  console.log(reportName(args[0]));
} else if (command === 'rest' && args.length === 2) {
  rest(args[0], args[1]);
} else if (command === 'merge' && (args.length === 2 || args.length === 3)) {
  merge(args[0], args.length === 3 ? args[1] : undefined, args[args.length - 1]);
} else {
  console.error('usage: mutation-stages.js name FILE | rest UNIT.json MUTANTS.json | merge UNIT.json [REST.json] OUT.json');
  process.exit(2);
}
