#!/usr/bin/env bash
# Every test: native, wasm in headless Chromium, end to end. Fails if any fails.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}

bash scripts/setup.sh

echo "== native tests (cargo test, with the network feature) =="
cargo test --workspace --features net

echo "== wasm tests in headless Chromium (wasm-bindgen-test-runner) =="
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
CHROMEDRIVER="$(command -v chromedriver)" \
WASM_BINDGEN_TEST_TIMEOUT=180 \
  cargo test --target wasm32-unknown-unknown --lib --tests

echo "== build the npm package and the relay =="
bash scripts/build-wasm.sh
cargo build -p endra-relay

echo "== TypeScript declarations (tsc --noEmit on pkg/index.d.ts and e2e/types.ts) =="
npx tsc -p tsconfig.json

echo "== end-to-end tests (Playwright, system Chromium) =="
node --test --test-concurrency=1 e2e/
