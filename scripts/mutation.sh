#!/usr/bin/env bash
# Mutation testing of the handler's cleanup, failure, image and helper code (stryker.config.mjs;
# docs/mutation.md says what it measures and how long it takes). Not part of `npm test`.
#
#   npm run mutation                      # every file of MUTATED_FILES, one after the other
#   npm run mutation -- lib/unikernel-ami/handler/failure.ts   # only the files named
#
# Each file is its own Stryker run, with its own reports and incremental file
# (reports/mutation/<file>.{html,json,incremental.json}): Stryker saves them only at the end of a
# run, so a run stopped by the budget keeps the files it finished, and a later run retests only the
# mutants of code or tests that changed since (STRYKER_ARGS=--force retests all of them).
# MUTATION_BUDGET_MINUTES (default 240) bounds the whole run's wall-clock time; when it is hit the
# run stops and says which files it did not finish. MUTATION_STATIC=1 also runs the static mutants
# (module-level constants), each of which needs the whole test set. Runs at low priority (nice).
set -euo pipefail

# All in one function, which bash reads whole before running it: editing this file during a run
# (hours long) does not change the run.
main() {
  cd "$(dirname "$0")/.."
  budget_s=$(( ${MUTATION_BUDGET_MINUTES:-240} * 60 ))
  if [ "$#" -gt 0 ]; then
    files=("$@")
  else
    mapfile -t files < <(node --input-type=module -e "import('./stryker.config.mjs').then((m) => console.log(m.MUTATED_FILES.join('\n')))")
  fi
  # The tests synthesize a stack, which needs the bundled handler.
  node scripts/bundle-handler.js
  # Each mutant's tests run fastest file first (scripts/jest-small-first-sequencer.js): measured here.
  mkdir -p reports/mutation
  node scripts/mutation-test-durations.js reports/mutation/test-durations.json
  export MUTATION_TEST_DURATIONS="$PWD/reports/mutation/test-durations.json"
  start=$(date +%s)
  failed=()
  for index in "${!files[@]}"; do
    file="${files[$index]}"
    left=$(( budget_s - ($(date +%s) - start) ))
    if [ "$left" -le 0 ]; then
      echo "mutation: the time budget of $(( budget_s / 60 )) minutes was hit; not run: ${files[*]:$index}" >&2
      exit 124
    fi
    echo "mutation: ${file} (${left} s of the budget left)"
    set +e
    # shellcheck disable=SC2086 # STRYKER_ARGS is a list of options
    MUTATION_FILE="$file" timeout --signal=INT --kill-after=60s "${left}s" nice -n 10 node_modules/.bin/stryker run ${STRYKER_ARGS:-}
    status=$?
    set -e
    if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
      echo "mutation: the time budget of $(( budget_s / 60 )) minutes was hit during ${file}; its results were not saved; not run: ${files[*]:$((index + 1))}" >&2
      exit 124
    fi
    if [ "$status" -ne 0 ]; then
      failed+=("$file (status ${status})")
    fi
  done
  node scripts/mutation-summary.js "${files[@]}"
  echo "mutation: finished in $(( $(date +%s) - start )) s"
  if [ "${#failed[@]}" -gt 0 ]; then
    echo "mutation: stryker failed for: ${failed[*]}" >&2
    exit 1
  fi
}

main "$@"
