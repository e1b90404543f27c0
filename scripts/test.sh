#!/usr/bin/env bash
# The project's test command (the README's): everything CI checks, runnable on a fresh clone with
# ../shared beside it and no GPU. GPU parity tests print why they skip.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release "$@"
