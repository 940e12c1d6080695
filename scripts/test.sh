#!/usr/bin/env bash
# Every test: native, wasm in headless Chromium, end to end. Fails if any fails.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}

bash scripts/setup.sh

echo "== house rules: cargo fmt --check, cargo clippy -D warnings (native all targets, wasm library) =="
cargo fmt --all --check
cargo clippy --workspace --features net --all-targets -- -D warnings
cargo clippy --lib --target wasm32-unknown-unknown --features net -- -D warnings

echo "== native tests (cargo test, with the network feature) =="
cargo test --workspace --features net

echo "== bench smoke runs (each native bench once, tiny, test profile; nothing written) =="
cargo test --workspace --features net --benches

echo "== wasm tests in headless Chromium (wasm-bindgen-test-runner) =="
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
CHROMEDRIVER="$(command -v chromedriver)" \
WASM_BINDGEN_TEST_TIMEOUT=180 \
  cargo test --target wasm32-unknown-unknown --lib --tests

echo "== build the npm package and the relay =="
bash scripts/build-wasm.sh
cargo build -p endra-relay

echo "== TypeScript declarations (tsc --noEmit on pkg/index.d.ts and e2e/types.ts), package files =="
npx tsc -p tsconfig.json
node scripts/check-package.mjs

echo "== end-to-end tests (Playwright, system Chromium) =="
# Each test fails after 4 minutes and the whole step after 25, rather than hang CI.
timeout --kill-after=30 1500 node --test --test-concurrency=1 --test-timeout=240000 e2e/

echo "== browser bench smoke runs (tiny sizes; nothing written) =="
timeout --kill-after=30 600 node bench/browser.mjs --smoke
timeout --kill-after=30 600 node bench/network.mjs --smoke
timeout --kill-after=30 600 node bench/transfer.mjs --smoke
