#!/usr/bin/env bash
# The one test command (README): formatting, lints, every Rust test, and the official OpenAI
# Python SDK against a spawned gateway. Installs what it needs (a Python venv) by itself.
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
