#!/usr/bin/env bash
# Applies migrations/ to the PostgreSQL database at DATABASE_URL (CONTRACT §1); idempotent.
# Builds first when dist/ is missing, e.g. right after a fresh checkout.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ -z "${DATABASE_URL:-}" ]]; then
  echo 'DATABASE_URL: required, the PostgreSQL database to migrate' >&2
  exit 1
fi

if [[ ! -f dist/src/cli.js ]]; then
  npx tsc -p .
fi

exec node dist/src/cli.js migrate "$@"
