#!/bin/sh
# Regenerates gen/ from ../../proto with the plugins pinned in go.mod (go tool) and the repository's buf.
# ./generate.sh --check regenerates into a temporary directory and fails if gen/ differs (stale generated code).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
buf=${BUF:-$here/../../.venv/bin/buf}
cd "$here"
if [ "${1:-}" = "--check" ]; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    "$buf" generate --template buf.gen.yaml -o "$tmp"
    if ! diff -r gen "$tmp/gen" >/dev/null; then
        diff -r gen "$tmp/gen" | head -20 >&2
        echo "clients/go/gen is stale: run clients/go/generate.sh" >&2
        exit 1
    fi
    echo "clients/go/gen is up to date"
else
    "$buf" generate --template buf.gen.yaml
fi
