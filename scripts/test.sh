#!/usr/bin/env bash
# The test command of the README: sets up (or reuses) the environment, then runs the whole pytest suite.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh -k cameras`).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$(bash "$root/scripts/setup_env.sh")"
cd "$root"
set +e
"$venv/bin/python" -m pytest "$@"
code=$?
set -e
if [ "$code" = 5 ]; then
  echo "pytest collected no tests: that is a failure, not a pass" >&2
fi
exit "$code"
