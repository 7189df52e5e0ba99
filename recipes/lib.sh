# shellcheck shell=bash disable=SC2034 # (variables set here are for the recipes that source it)
# Shared helpers for recipes/<name>/build. Source it; it expects `set -euo pipefail`.
#
#   recipe_init NAME OUTDIR       sets RECIPE_NAME, OUT, WORK, LOG; opens the log
#   roam_cc_wrapper               prints the path of a one-word `roam cc` wrapper (for CC=...)
#   fetch_npm_package NAME VER    prints the dir of the unpacked npm tarball (cached)
#   fetch_deb_source PKG VER      prints the dir holding PKG's .dsc and tarballs (cached)
#   unpack_deb_source DIR DEST    extracts the .dsc in DIR (Debian patches applied) into DEST
#   run CMD... / timed LABEL CMD...   runs CMD with its output going to the log (timed: + duration)
#   recipe_stamp / recipe_up_to_date / recipe_done   skip a build whose inputs did not change
#   need_debian_packages PKG...   installs missing build tools (as root)
#   need_wasm_programs            stops unless WebAssembly modules run as programs (binfmt_misc)
#   wasm_ar / wasm_ranlib         llvm-ar/llvm-ranlib (wasm-ld needs archive indexes)
#
# Sources come only from npm or Debian source packages and are cached in
# ${ROAM_CACHE:-$HOME/.cache/roam}/sources/.

RECIPES_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$RECIPES_DIR/.." && pwd)"
SOURCES_CACHE="${ROAM_CACHE:-$HOME/.cache/roam}/sources"
# Native and wasm builds use at most this many jobs (the project's machines have 2 cores).
JOBS="${ROAM_JOBS:-2}"

die() {
  echo "$*" >&2
  exit 1
}

# The roam command (without `cc`): $ROAM if set, else this checkout's CLI.
roam_command() {
  if [[ -n "${ROAM:-}" ]]; then
    echo "$ROAM"
  else
    [[ -f "$REPO_ROOT/dist/src/cli/main.js" ]] || die "recipes: $REPO_ROOT/dist/src/cli/main.js is missing: run 'npm run build' (or set ROAM)"
    echo "node $REPO_ROOT/dist/src/cli/main.js"
  fi
}

recipe_init() {
  RECIPE_NAME="$1"
  # The recipe's own directory (recipes/NAME or recipes/corpus/NAME): part of the stamp.
  RECIPE_DIR="$(cd "$(dirname "$0")" && pwd)"
  [[ -n "${2:-}" ]] || die "usage: $0 OUTDIR"
  mkdir -p "$2"
  OUT="$(cd "$2" && pwd)"
  WORK="$OUT/.work/$RECIPE_NAME"
  LOG="$OUT/$RECIPE_NAME.build.log"
  : >"$LOG"
  trap 'recipe_failed $?' EXIT
}

recipe_failed() {
  local status="$1"
  trap - EXIT
  if [[ "$status" != 0 ]]; then
    echo "recipes/$RECIPE_NAME: build failed (exit $status); last lines of $LOG:" >&2
    tail -n 25 "$LOG" | cut -c1-400 >&2
  fi
  exit "$status"
}

log() {
  echo "[$(date +%H:%M:%S)] $*" >>"$LOG"
}

run() {
  echo "+ $*" >>"$LOG"
  "$@" >>"$LOG" 2>&1
}

# Times a step into the log: `timed LABEL CMD...`.
timed() {
  local label="$1" start end
  shift
  start=$(date +%s)
  "$@"
  end=$(date +%s)
  log "$label took $((end - start)) s"
}

# A one-word CC for configure/make (libtool splits multi-word CCs badly): bin/roam-cc, which runs
# clang without Node once its memo is made; with ROAM set, a wrapper around that command.
roam_cc_wrapper() {
  if [[ -z "${ROAM:-}" ]]; then
    roam_command >/dev/null # dies with its message when the build is missing
    echo "$REPO_ROOT/bin/roam-cc"
    return
  fi
  local bin="$WORK/bin"
  mkdir -p "$bin"
  printf '#!/bin/sh\nexec %s cc "$@"\n' "$ROAM" >"$bin/roam-cc"
  chmod +x "$bin/roam-cc"
  echo "$bin/roam-cc"
}

# Tools for wasm archives: GNU ar writes no symbol index for wasm objects and wasm-ld needs one.
wasm_ar() { command -v llvm-ar || command -v llvm-ar-14 || die "recipes: llvm-ar not found (apt-get install llvm)"; }
wasm_ranlib() { command -v llvm-ranlib || command -v llvm-ranlib-14 || die "recipes: llvm-ranlib not found (apt-get install llvm)"; }

# ---------------------------------------------------------------------------------------------
# Skipping unchanged builds: the stamp covers the recipe, this file, roam cc, its runtime,
# both compilers and the source version.

recipe_stamp() {
  local extra="$1"
  {
    echo "$extra"
    cat "$RECIPES_DIR/lib.sh" "$RECIPE_DIR"/*
    cat "$REPO_ROOT"/dist/src/build/cc.js "$REPO_ROOT"/dist/src/build/toolchain.js 2>/dev/null || true
    # What runs configure's test programs and a build's own helpers (binfmt_misc: scripts/setup).
    cat "$REPO_ROOT"/bin/roam-exec "$REPO_ROOT"/bin/roam-binfmt "$REPO_ROOT"/dist/src/cli/exec.js 2>/dev/null || true
    # The runtime and the POSIX layer roam cc links into every program, and the CMake toolchain.
    find "$REPO_ROOT/runtime" "$REPO_ROOT/cmake" -type f | sort | xargs cat
    echo "ROAM=${ROAM:-}"
    gcc --version | head -n 1
    ${ROAM_CLANG:-clang} --version | head -n 1
  } | sha256sum | cut -d' ' -f1
}

# True (and logs it) when OUT already holds this recipe's outputs for the same inputs.
recipe_up_to_date() {
  local stamp="$1" file="$OUT/.$RECIPE_NAME.stamp" name
  [[ -z "${ROAM_REBUILD:-}" && -f "$file" && "$(cat "$file")" == "$stamp" ]] || return 1
  for name in "$RECIPE_NAME.native" "$RECIPE_NAME.wasm"; do
    [[ -f "$OUT/$name" ]] || return 1
  done
  log "up to date (stamp $stamp); set ROAM_REBUILD=1 to rebuild"
  return 0
}

recipe_done() {
  echo "$1" >"$OUT/.$RECIPE_NAME.stamp"
  log "done: $OUT/$RECIPE_NAME.native $OUT/$RECIPE_NAME.wasm"
}

# need_debian_packages PKG...: installs the missing ones (as root), else says how.
need_debian_packages() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [[ ${#missing[@]} == 0 ]] && return 0
  [[ "$(id -u)" == 0 ]] || die "recipes/$RECIPE_NAME: needs: apt-get install ${missing[*]}"
  log "installing ${missing[*]}"
  run env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" \
    || { run apt-get update && run env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"; }
}

# need_wasm_programs: for a build that runs a program it has just compiled with roam cc (bc's fbc,
# discount's mktags): the kernel must hand WebAssembly modules to bin/roam-binfmt, as scripts/setup
# arranges (binfmt_misc).
need_wasm_programs() {
  local entry=/proc/sys/fs/binfmt_misc/roam-wasm
  [[ -f "$entry" ]] && grep -qx enabled "$entry" && return 0
  die "recipes/$RECIPE_NAME: its build runs programs it has just compiled, and WebAssembly modules do not run as programs here: run scripts/setup (it registers them with binfmt_misc)"
}

# ---------------------------------------------------------------------------------------------
# npm

# fetch_npm_package NAME VERSION: unpacks `npm pack NAME@VERSION` once; prints the package dir.
fetch_npm_package() {
  local name="$1" version="$2"
  local dir="$SOURCES_CACHE/npm/$name-$version"
  if [[ ! -f "$dir/.complete" ]]; then
    log "fetching npm package $name@$version"
    rm -rf "$dir" && mkdir -p "$dir"
    local tarball
    tarball="$(cd "$dir" && npm pack --silent "$name@$version" 2>>"$LOG" | tail -n 1)"
    [[ -f "$dir/$tarball" ]] || die "recipes: npm pack $name@$version failed"
    tar -xzf "$dir/$tarball" -C "$dir"
    touch "$dir/.complete"
  fi
  echo "$dir/package"
}

# ---------------------------------------------------------------------------------------------
# Debian source packages

# Adds deb-src entries mirroring the deb ones (a separate sources file) when apt has none.
ensure_deb_src() {
  if apt-get indextargets --format '$(CREATED_BY)' 2>/dev/null | grep -qx Sources; then
    return 0
  fi
  [[ "$(id -u)" == 0 ]] || die "recipes: apt has no deb-src entries; as root, add /etc/apt/sources.list.d/roam-src.sources (Types: deb-src) and run apt-get update"
  local list=/etc/apt/sources.list.d/roam-src.sources
  if [[ ! -f "$list" ]]; then
    [[ -f /etc/apt/sources.list.d/debian.sources ]] || die "recipes: no /etc/apt/sources.list.d/debian.sources to derive deb-src entries from"
    log "adding deb-src entries in $list"
    sed 's/^Types:.*/Types: deb-src/' /etc/apt/sources.list.d/debian.sources >"$list"
  fi
  run apt-get update
}

# fetch_deb_source PKG VERSION: downloads (once) PKG's source package, VERSION if apt still has
# it, else the newest version apt can fetch. Prints the cache dir holding the .dsc.
fetch_deb_source() {
  local pkg="$1" want="$2" version dir
  local base="$SOURCES_CACHE/debian"
  dir="$(ls -d "$base/${pkg}_${want#*:}" 2>/dev/null || true)"
  if [[ -n "$dir" && -f "$dir/.complete" ]]; then
    echo "$dir"
    return 0
  fi
  ensure_deb_src
  local candidates
  candidates="$(printf '%s\n' "$want"; apt-cache showsrc "$pkg" 2>/dev/null | sed -n 's/^Version: //p' | sort -Vr)"
  for version in $(printf '%s\n' "$candidates" | awk '!seen[$0]++'); do
    dir="$base/${pkg}_${version#*:}"
    if [[ -f "$dir/.complete" ]]; then
      echo "$dir"
      return 0
    fi
    rm -rf "$dir" && mkdir -p "$dir"
    log "fetching Debian source $pkg=$version"
    if (cd "$dir" && apt-get source --download-only "$pkg=$version") >>"$LOG" 2>&1; then
      [[ "$version" == "$want" ]] || log "note: $pkg=$want is not available; using $version"
      touch "$dir/.complete"
      echo "$dir"
      return 0
    fi
    rm -rf "$dir"
  done
  die "recipes: cannot fetch Debian source package $pkg"
}

# unpack_deb_source DIR DEST: a fresh tree with Debian's patches applied. The tarballs are checked
# against the .dsc (apt checked the .dsc against the signed Sources index when it fetched it).
unpack_deb_source() {
  local dir="$1" dest="$2"
  rm -rf "$dest"
  mkdir -p "$(dirname "$dest")"
  run dpkg-source -x "$(ls "$dir"/*.dsc | head -n 1)" "$dest"
}

# corpus_tree NAME CMD...: a fresh tree of $DEBS (Debian's patches applied) in $WORK/NAME, then
# CMD (one shell command: the package's own build commands) run there, output to the log.
# The corpus recipes (recipes/corpus/) build each tree twice: gcc -O2 and roam cc.
corpus_tree() {
  local name="$1"
  shift
  unpack_deb_source "$DEBS" "$WORK/$name"
  (cd "$WORK/$name" && run bash -c "$*")
}
