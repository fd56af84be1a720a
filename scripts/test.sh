#!/usr/bin/env bash
# The whole test suite from scratch: installs what it needs (pip, cargo), builds the extension,
# runs the Rust and Python checks and tests. README.md's second command; .ci/run calls it.
set -euo pipefail
cd "$(dirname "$0")/.."

# Reuse a build cache outside the clone when one exists (release arrow/parquet builds are slow).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/amlguard-target}"
export CARGO_TERM_COLOR=never
PYTHON="${PYTHON:-python3}"

step() { printf '\n== %s\n' "$*"; }

step "installing test dependencies"
"$PYTHON" -m pip install --quiet --disable-pip-version-check \
    "maturin>=1.7,<2" "pytest>=8" "pyarrow>=14" "polars>=1.0" "pandas>=2.0" "pyyaml>=6" \
    "hypothesis>=6" "ruff>=0.6" "mypy>=1.10" "types-PyYAML" "cryptography>=42" \
    "nbclient>=0.10" "nbformat>=5" "ipykernel>=6" \
    "azure-keyvault-keys>=4.9" "azure-identity>=1.17" "azure-storage-blob>=12.20" \
    "deltalake==1.6.6" "pyroaring>=1.0"
rustup component add rustfmt clippy >/dev/null 2>&1 || true
# unshare and ip: the IMDS and Azure CLI credential tests run in a network namespace of their own.
if ! command -v unshare >/dev/null || ! command -v ip >/dev/null; then
    apt-get update -qq && apt-get install -y -qq util-linux iproute2 >/dev/null
fi
# Azurite (Azure Blob Storage emulator) for tests/test_blob.py; the tests start and stop it.
AZURITE_CACHE="${AMLGUARD_AZURITE_CACHE:-$HOME/.cache/amlguard-azurite}"
[ -x "$AZURITE_CACHE/node_modules/.bin/azurite-blob" ] ||
    npm install --silent --no-audit --no-fund --prefix "$AZURITE_CACHE" azurite@3

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (core, then with the python glue)"
cargo clippy --all-targets -- -D warnings
cargo clippy --lib --features python -- -D warnings

step "cargo test (the core without Python)"
cargo test --no-default-features

step "building and installing the extension (release)"
rm -rf "$CARGO_TARGET_DIR/wheels-ci"
maturin build --release --quiet -o "$CARGO_TARGET_DIR/wheels-ci"
"$PYTHON" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps \
    "$CARGO_TARGET_DIR"/wheels-ci/amlguard-*.whl
"$PYTHON" -m pip install --quiet --disable-pip-version-check "$CARGO_TARGET_DIR"/wheels-ci/amlguard-*.whl

step "ruff, mypy --strict, stubtest"
"$PYTHON" -m ruff check python tests benches notebooks
"$PYTHON" -m ruff format --check python tests benches notebooks
"$PYTHON" -m mypy --strict python/amlguard
"$PYTHON" -m mypy.stubtest amlguard._amlguard

step "pytest"
# Run from outside the source tree so the installed package (with its extension) is tested.
cd tests && "$PYTHON" -m pytest -q -p no:cacheprovider .
