#!/usr/bin/env bash
# Benchmarks (not tests): criterion for the core, the browser IndexedDB and network benches,
# the native network bench, the wasm size.
# Each writes bench/results/*.json; the README summarises them.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}

bash scripts/setup.sh
mkdir -p bench/results

echo "== criterion: walytis core =="
cargo bench --bench walytis

echo "== identities: rekey on removal vs group size, resolving a DID =="
cargo bench --bench identity

echo "== records: writing a private message, posting 1 MiB, folding a record of 100 versions =="
cargo bench --bench records

echo "== identities in wasm: the same scenarios in headless Chromium, release profile =="
# An #[ignore]d wasm-bindgen test (tests/identity_wasm_bench.rs) that prints one line.
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
CHROMEDRIVER="$(command -v chromedriver)" \
WASM_BINDGEN_TEST_TIMEOUT=900 \
  cargo test --release --target wasm32-unknown-unknown --test identity_wasm_bench \
    -- --include-ignored --nocapture | tee /tmp/endra-identity-wasm.log
grep -o 'ENDRA_BENCH .*' /tmp/endra-identity-wasm.log | sed 's/^ENDRA_BENCH //' \
  | node -e 'let s = ""; process.stdin.on("data", (d) => { s += d; }).on("end", () => console.log(JSON.stringify(JSON.parse(s), null, 2)))' \
  > bench/results/identity-wasm.json
test -s bench/results/identity-wasm.json

echo "== browser: IndexedDB append and insert =="
bash scripts/build-wasm.sh
node bench/browser.mjs

echo "== network: browser → relay → browser latency, 10,000-block catch-up =="
cargo build -p endra-relay
# The js-libp2p reference lives in its own package: only the bench installs it.
(cd bench/js-libp2p && npm ci --no-audit --no-fund)
node bench/network.mjs

echo "== records: text latency (plain block vs offchain inline), a 20 MiB record browser → relay → browser beside plain WebSocket =="
# Through an optimised relay, as one would be deployed: on this 2-core machine the two
# browsers and the relay share the cores, and a debug relay's CPU time slowed the transfer.
cargo build --profile bench -p endra-relay
node bench/transfer.mjs --relay target/release/endra-relay

echo "== network, native: 10,000-block catch-up over libp2p, relay capacity (1,000 clients) =="
cargo bench --features net --bench network

echo "== release wasm size =="
raw=$(wc -c < pkg/wasm/endra_bg.wasm)
gz=$(gzip -9 -c pkg/wasm/endra_bg.wasm | wc -c)
printf '{\n  "benchmark": "release wasm size (pkg/wasm/endra_bg.wasm)",\n  "raw_bytes": %s,\n  "gzip_bytes": %s\n}\n' "$raw" "$gz" | tee bench/results/wasm-size.json
