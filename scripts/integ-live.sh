#!/usr/bin/env bash
# npm run integ:live: deploys test/integ.boot.ts to the AWS account and region of the environment with
# integ-runner, waits for every unikernel's greeting on its instance's console, and destroys the stacks
# (integ-runner's default --clean). docs/live-test.md says what it costs and what to send back on failure.
set -euo pipefail
cd "$(dirname "$0")/.."

region="${AWS_REGION:-${AWS_DEFAULT_REGION:-}}"
if [ -z "$region" ]; then
  echo "integ:live needs a region with PV-GRUB: set AWS_REGION (for example AWS_REGION=us-east-1)." >&2
  exit 2
fi
regions=$(node -r ts-node/register/transpile-only -e "process.stdout.write(require('./lib/pv-grub').PV_GRUB_REGIONS.filter((r) => !r.startsWith('us-gov-')).join(' '))")
case " $regions " in
  *" $region "*) ;;
  *) echo "integ:live: $region has no PV-GRUB; use one of: $regions" >&2; exit 2 ;;
esac
echo "integ:live: deploying test/integ.boot.ts to $region with the credentials of this environment; it destroys the stacks when done." >&2
exec npx integ-runner --directory test --language typescript --parallel-regions "$region" --force --strict integ.boot.ts
