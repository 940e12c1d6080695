#!/usr/bin/env bash
# Builds the wasm package into pkg/wasm: release build, wasm-bindgen, then wasm-opt if present.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}

cargo build --lib --release --target wasm32-unknown-unknown --features net
wasm-bindgen --target web --out-dir pkg/wasm --out-name endra \
  target/wasm32-unknown-unknown/release/endra.wasm
# Debian's wasm-opt (binaryen 108) predates the externref table that wasm-bindgen emits for
# Rust's default reference-types and breaks it ("Table.grow(): failed to grow table"), so it
# only runs on request. The release profile is already size-tuned (opt-level z, LTO).
if [ "${ENDRA_WASM_OPT:-0}" = 1 ] && command -v wasm-opt >/dev/null 2>&1; then
  if wasm-opt -Oz --enable-bulk-memory --enable-sign-ext --enable-nontrapping-float-to-int \
      --enable-mutable-globals --enable-reference-types --enable-multivalue \
      -o pkg/wasm/endra_bg.opt.wasm pkg/wasm/endra_bg.wasm 2>/tmp/endra-wasm-opt.log; then
    mv pkg/wasm/endra_bg.opt.wasm pkg/wasm/endra_bg.wasm
  else
    echo "build-wasm: wasm-opt failed (see /tmp/endra-wasm-opt.log); keeping the unoptimised module" >&2
    rm -f pkg/wasm/endra_bg.opt.wasm
  fi
fi
echo "build-wasm: pkg/wasm/endra_bg.wasm $(wc -c < pkg/wasm/endra_bg.wasm) bytes"
