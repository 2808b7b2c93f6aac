#!/usr/bin/env bash
# The one test command (README): formatting, lints, every Rust test, the official OpenAI,
# Anthropic and DashScope Python SDKs against a spawned gateway, and the tenant portal in a real
# browser. Installs what it needs (a Python venv, Debian's Chromium, playwright-core) by itself.
#
# PostgreSQL: set MODELROUTER_TEST_DATABASE_URL=postgres://… to run every storage and flow test
# against PostgreSQL as well as the embedded SQLite store (each test creates its own database).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test (stores: sqlite${MODELROUTER_TEST_DATABASE_URL:+, postgres})"
cargo test --workspace

step "Official SDK conformance: openai, anthropic, dashscope (tests/sdk)"
venv=".venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/sdk/requirements.txt
cargo build --quiet
MODELROUTER_BIN="$PWD/target/debug/modelrouter" "$venv/bin/python" -m pytest -q tests/sdk

step "The portal, the console and the agent portal in a real browser: Debian's Chromium + playwright-core (tests/browser)"
# playwright-core drives the system Chromium; it never downloads a browser of its own.
if [ ! -x /usr/bin/chromium ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
if ! command -v node >/dev/null || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  echo "tests/browser needs Node.js 20 or newer (node --test); found: $(node --version 2>/dev/null || echo none)" >&2
  exit 1
fi
# Reinstall only when the lockfile changed since the last install.
if ! cmp -s tests/browser/package-lock.json tests/browser/node_modules/.installed-lock.json; then
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
  cp tests/browser/package-lock.json tests/browser/node_modules/.installed-lock.json
fi
# Screenshots of every page at laptop and phone width, the gateway's logs and the CSV export go to
# test-output/browser/.
bin="$PWD/target/debug/modelrouter"
(cd tests/browser && MODELROUTER_BIN="$bin" node --test --test-reporter=spec)
