#!/usr/bin/env bash
# Rebuilds the web assets from web/ and fails when the committed gql/static differs from the
# result: what ships in the Python package must be exactly what its sources produce.
set -euo pipefail
cd "$(dirname "$0")/.."

npm --prefix web ci --no-audit --no-fund
npm --prefix web run lint   # formatting, so diffs stay about behaviour
npm --prefix web run build  # type-checks, then bundles into gql/static

stale=$(git status --porcelain --untracked-files=all -- gql/static)
if [ -n "$stale" ]; then
  echo "$stale" | head -20 >&2
  echo "gql/static is out of date with web/: run 'npm --prefix web ci && npm --prefix web run build' and commit gql/static" >&2
  exit 1
fi
echo "gql/static matches its sources in web/"
