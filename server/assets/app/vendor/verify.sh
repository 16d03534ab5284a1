#!/usr/bin/env bash
# The vendored files are the published ones: fetch the same versions from
# the npm registry and compare byte for byte.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent signature_pad@5.1.4 idb@8.0.4 >/dev/null
mkdir sp idb
tar xzf signature_pad-5.1.4.tgz -C sp
tar xzf idb-8.0.4.tgz -C idb
sed '/^\/\/# sourceMappingURL=/d' sp/package/dist/signature_pad.min.js | cmp - "$here/signature_pad.js"
cmp sp/package/LICENSE "$here/LICENSE-signature_pad"
cmp idb/package/build/index.js "$here/idb.js"
cmp idb/package/LICENSE "$here/LICENSE-idb"
echo "vendored app libraries match npm: signature_pad 5.1.4, idb 8.0.4"
