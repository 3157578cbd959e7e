#!/usr/bin/env bash
# Fetch the console's vendored front-end files from the npm registry again and check them
# (console/static/vendor/README.md lists versions and hashes). Needs npm.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=2.0.11
INTEGRITY="sha512-Thx/WtpeOQqSrqBCw/A1cwGJGg4UrVa3+sW0GmrM3p4gJgO89ecH4qtbnyzDDWFvBTqjnIMCgELTNt636dtamA=="
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "htmx.org@$VERSION" >/dev/null)
got="sha512-$(openssl dgst -sha512 -binary "$work/htmx.org-$VERSION.tgz" | base64 -w0)"
[ "$got" = "$INTEGRITY" ] || { echo "htmx.org@$VERSION: tarball integrity differs" >&2; exit 1; }
tar -xzf "$work/htmx.org-$VERSION.tgz" -C "$work"
cp "$work/package/dist/htmx.min.js" "console/static/vendor/htmx-$VERSION.min.js"
sha256sum "console/static/vendor/htmx-$VERSION.min.js"
