#!/usr/bin/env bash
# make dist: the release artifacts, from the files git tracks (never lib/,
# node_modules/ or a test's leftovers), into $DIST (dist/ by default):
#
#   ngx-ipc-<v>-1.src.rock   the rockspec and the source archive; installing it
#                            builds the shim (a C compiler and make), no Node:
#                            build/ is in it
#   ngx-ipc-<v>.tgz          the npm package (declarations, generated Lua,
#                            README, LICENSE, CHANGELOG)
#   SHA256SUMS               both, for sha256sum -c
#
# package.json's "version" is the release; every other place that names it must
# agree, or nothing is built:
#   t/dist.sh --check        only that check
set -euo pipefail
cd "$(dirname "$0")/.."
DIST=${DIST:-dist}

fail() { echo "make dist: $*" >&2; exit 1; }

version=$(sed -n 's/^  "version": "\([^"]*\)",$/\1/p' package.json)
[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || fail "package.json: no version x.y.z (found '$version')"
rockspec=rockspec/ngx-ipc-$version-1.rockspec

# each place that names the release: file, what it must contain
mismatches=()
expect() {
  local file=$1 text=$2
  if [[ ! -f $file ]]; then
    mismatches+=("$file: missing")
  elif ! grep -qF -- "$text" "$file"; then
    mismatches+=("$file: does not contain '$text'")
  fi
}
expect src/ngx/ipc.ts "const VERSION = \"$version\";"
expect build/ngx/ipc.lua "local VERSION = \"$version\""
expect types/ngx.ipc.d.ts "\"$version\""
expect meta/ngx/ipc.lua "ipc._VERSION = \"$version\""
expect "$rockspec" "version = \"$version-1\""
expect "$rockspec" "dir = \"ngx-ipc-$version\""
expect "$rockspec" "/ngx-ipc-$version.tar.gz\""
expect package-lock.json "\"version\": \"$version\""
expect CHANGELOG.md "## $version "
expect README.md "ngx.ipc $version"
# the newest entry of the changelog is this release
first=$(grep -m1 '^## [0-9]' CHANGELOG.md 2>/dev/null || true)
[[ $first == "## $version "* ]] || mismatches+=("CHANGELOG.md: the newest entry is '$first', not $version")
for spec in rockspec/ngx-ipc-[0-9]*-1.rockspec; do
  [[ $spec == "$rockspec" ]] || mismatches+=("$spec: a rockspec of another release than $version")
done
if ((${#mismatches[@]})); then
  printf 'make dist: version %s (package.json) disagrees with:\n' "$version" >&2
  printf '  %s\n' "${mismatches[@]}" >&2
  exit 1
fi
[[ ${1:-} == --check ]] && { echo "version $version: every place agrees"; exit 0; }

command -v zip >/dev/null || fail "zip is missing (apt-get install zip)"
command -v npm >/dev/null || fail "npm is missing"

stage=$(mktemp -d /tmp/ngx-ipc-dist.XXXXXX)
trap 'rm -rf "$stage"' EXIT
name=ngx-ipc-$version
mkdir -p "$stage/$name" "$DIST"
DIST=$(cd "$DIST" && pwd)
# the tracked files as they are in the work tree (git archive would take HEAD's)
git ls-files -z | tar --null -T - -cf - | tar -xf - -C "$stage/$name"
# one archive for one set of files: names sorted, times and owners fixed
tar --sort=name --mtime='2000-01-01 00:00Z' --owner=0 --group=0 --numeric-owner \
  -C "$stage" -cf - "$name" | gzip -n >"$stage/$name.tar.gz"

rock=$name-1.src.rock
cp "$rockspec" "$stage/"
rm -f "$DIST/$rock"
(cd "$stage" && TZ=UTC zip -q -X "$DIST/$rock.tmp" "$name-1.rockspec" "$name.tar.gz")
mv "$DIST/$rock.tmp" "$DIST/$rock"

# npm pack of the staged copy: the package.json "files" list decides what goes in
(cd "$stage/$name" && npm pack --silent --pack-destination "$stage" >/dev/null)
mv "$stage/$name.tgz" "$DIST/$name.tgz"

(cd "$DIST" && sha256sum "$rock" "$name.tgz" >SHA256SUMS)
echo "make dist: $DIST: $rock, $name.tgz, SHA256SUMS"
