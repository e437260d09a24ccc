#!/usr/bin/env bash
# Build the Lovelace cards (frontend/) into the bundle the integration serves
# (custom_components/edge_ems/frontend/edge-ems-cards.js): npm packages from the lockfile,
# installed again only when the lockfile changed (from npm's cache where it has them), then
# esbuild. Run inside scripts/in-env, which has Debian's node and npm.
set -euo pipefail
cd "$(dirname "$0")/../frontend"
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --prefer-offline --no-audit --no-fund --loglevel=error
fi
node build.mjs
