#!/usr/bin/env bash
# Supply-chain checks with cargo-deny (policy in deny.toml): licences,
# banned and duplicate crates, and sources (crates.io only). Installs
# cargo-deny when missing. Exits non-zero on any failure.
#
# Advisories (RustSec) need the advisory database, which is a git
# repository on GitHub. They run when GitHub answers and are skipped, with
# a message saying so, when it does not.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_DENY_VERSION=0.20.2
ADVISORY_DB=https://github.com/RustSec/advisory-db

# 1. cargo-deny, pinned; a build from source takes a few minutes.
if ! cargo deny --version 2>/dev/null | grep -qF "$CARGO_DENY_VERSION"; then
    echo "supply-chain: installing cargo-deny $CARGO_DENY_VERSION" >&2
    cargo install cargo-deny --locked --version "$CARGO_DENY_VERSION"
fi

# 2. What needs nothing but the lock file and crates.io.
cargo deny --color never check licenses bans sources

# 3. Advisories, when their database can be fetched.
if timeout 20 git ls-remote --heads "$ADVISORY_DB" >/dev/null 2>&1; then
    cargo deny --color never check advisories
else
    echo "supply-chain: SKIPPED advisories: $ADVISORY_DB cannot be reached from" \
        "this machine, and cargo-deny has no other source for the RustSec database." >&2
fi
