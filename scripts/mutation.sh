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
  mkdir -p reports/mutation
  start=$(date +%s)
  failed=()
  # One Stryker run of one stage (stryker.config.mjs MUTATION_STAGE; the rest stage with the file of
  # its mutants' ranges) of one file, within the budget:
  # exits the script when the budget is hit, and fails (recorded in `failed`) when Stryker does.
  stage() {
    local left status
    left=$(( budget_s - ($(date +%s) - start) ))
    set +e
    # shellcheck disable=SC2086 # STRYKER_ARGS is a list of options
    MUTATION_FILE="$1" MUTATION_STAGE="$2" MUTATION_MUTANTS="${3:-}" timeout --signal=INT --kill-after=60s "${left}s" nice -n 10 node_modules/.bin/stryker run ${STRYKER_ARGS:-}
    status=$?
    set -e
    if [ "$status" -eq 124 ] || [ "$status" -eq 137 ] || [ "$left" -le 0 ]; then
      echo "mutation: the time budget of $(( budget_s / 60 )) minutes was hit during ${1} (${2} stage); its results were not saved; not run: ${files[*]:$((index + 1))}" >&2
      exit 124
    fi
    if [ "$status" -ne 0 ]; then
      failed+=("$1 ($2 stage, status ${status})")
      return 1
    fi
  }
  for index in "${!files[@]}"; do
    file="${files[$index]}"
    left=$(( budget_s - ($(date +%s) - start) ))
    if [ "$left" -le 0 ]; then
      echo "mutation: the time budget of $(( budget_s / 60 )) minutes was hit; not run: ${files[*]:$index}" >&2
      exit 124
    fi
    name=$(node scripts/mutation-stages.js name "$file")
    echo "mutation: ${file} (${left} s of the budget left): the unit tests first"
    if ! stage "$file" unit; then
      continue
    fi
    retest=$(node scripts/mutation-stages.js rest "reports/mutation/${name}.unit.json" "reports/mutation/${name}.rest-mutants.json")
    if [ "$retest" -eq 0 ]; then
      node scripts/mutation-stages.js merge "reports/mutation/${name}.unit.json" "reports/mutation/${name}.json"
      continue
    fi
    echo "mutation: ${file}: ${retest} mutants the unit tests did not detect, with the whole test set"
    if ! stage "$file" rest "$PWD/reports/mutation/${name}.rest-mutants.json"; then
      continue
    fi
    node scripts/mutation-stages.js merge "reports/mutation/${name}.unit.json" "reports/mutation/${name}.rest.json" "reports/mutation/${name}.json"
  done
  node scripts/mutation-summary.js "${files[@]}"
  echo "mutation: finished in $(( $(date +%s) - start )) s"
  if [ "${#failed[@]}" -gt 0 ]; then
    echo "mutation: stryker failed for: ${failed[*]}" >&2
    exit 1
  fi
}

main "$@"
