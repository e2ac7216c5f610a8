#!/usr/bin/env bash
# Installs what the tests need beyond `npm install`, idempotently:
# - the native binary of nodejs-polars (the independent Arrow reader of the Arrow tests). The
#   package marks its binaries for Node >= 22, so npm skips them on Node 20; the binary itself
#   is N-API and loads on Node 20, so it is unpacked from the registry into node_modules here.
set -euo pipefail
cd "$(dirname "$0")/.."

if node -e "require('nodejs-polars')" >/dev/null 2>&1; then exit 0; fi
case "$(uname -m)" in
  x86_64) arch=x64 ;;
  aarch64) arch=arm64 ;;
  *) echo "install-test-deps: no nodejs-polars binary for $(uname -m)" >&2; exit 1 ;;
esac
libc=gnu
if ldd --version 2>&1 | grep -qi musl; then libc=musl; fi
version=$(node -p "require('nodejs-polars/package.json').version")
pkg="nodejs-polars-linux-${arch}-${libc}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "${pkg}@${version}" >/dev/null)
mkdir -p "node_modules/${pkg}"
tar -xzf "$tmp"/*.tgz -C "node_modules/${pkg}" --strip-components=1
node -e "require('nodejs-polars')" || { echo "install-test-deps: nodejs-polars still does not load" >&2; exit 1; }
echo "install-test-deps: unpacked ${pkg}@${version}"
