# Sourced by bin/start and bin/test: installs what is missing, saying what it does.
#   Deno 2.9.6 from npm (npm install -g deno@2.9.6); from Debian (apt-get): nats-server, Mesa's
#   Vulkan software driver (lavapipe) and, for bin/test, chromium.
DENO_VERSION="2.9.6"

_say() { printf 'bootstrap: %s\n' "$*" >&2; }

_as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

ensure_deno() {
  if command -v deno >/dev/null 2>&1 && deno --version 2>/dev/null | head -n 1 | grep -q "deno ${DENO_VERSION} "; then
    return 0
  fi
  if ! command -v npm >/dev/null 2>&1; then
    _say "Deno ${DENO_VERSION} is needed and npm is missing: install Node.js and npm first" && return 1
  fi
  _say "installing Deno ${DENO_VERSION} from npm: npm install -g deno@${DENO_VERSION}"
  _as_root npm install -g --allow-scripts=deno "deno@${DENO_VERSION}" >&2 2>/dev/null ||
    _as_root npm install -g "deno@${DENO_VERSION}" >&2
  hash -r
  deno --version | head -n 1 >&2
}

ensure_nats_server() {
  if command -v nats-server >/dev/null 2>&1; then return 0; fi
  _say "installing nats-server from Debian: apt-get update && apt-get install -y nats-server"
  _as_root apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive _as_root apt-get install -y -qq nats-server >&2
  hash -r
  nats-server --version >&2
}

ensure_deps() {
  # Fetches the npm packages pinned in deno.json / deno.lock into Deno's cache (no-op when cached).
  # (The dashboard's page and browser test pull uplot and playwright-core too.)
  deno install --quiet --entrypoint main.ts workers/compute_thread.ts src/dashboard/app/main.ts \
    tests/dashboard_browser.test.ts >&2 ||
    { _say "could not fetch the npm dependencies (is the npm registry reachable?)"; return 1; }
}

ensure_mesa_vulkan() {
  # WebGPU on a machine without a GPU runs on Mesa's software rasteriser. Through Mesa's GL/EGL
  # driver (all that is there without this package) a process that used webgpu could abort while
  # exiting (`corrupted size vs. prev_size in fastbins`, exit 134) as wgpu's EGL teardown raced
  # the exit; through Mesa's Vulkan driver (lavapipe, Debian's mesa-vulkan-drivers) no GL/EGL is
  # loaded at all. DENO_WEBGPU_BACKEND=vulkan keeps Deno's wgpu from also opening an EGL display
  # (it starts every backend otherwise, even when it hands out the Vulkan adapter).
  if ! ls /usr/share/vulkan/icd.d/lvp_icd.*.json >/dev/null 2>&1; then
    if ! command -v apt-get >/dev/null 2>&1; then
      _say "Mesa's Vulkan driver (lavapipe) is missing and there is no apt-get: webgpu stays on GL/EGL"
      return 0
    fi
    _say "installing Mesa's Vulkan software driver from Debian: apt-get update && apt-get install -y mesa-vulkan-drivers"
    _as_root apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive _as_root apt-get install -y -qq mesa-vulkan-drivers >&2
  fi
  if ls /usr/share/vulkan/icd.d/lvp_icd.*.json >/dev/null 2>&1; then
    export DENO_WEBGPU_BACKEND="${DENO_WEBGPU_BACKEND:-vulkan}"
  fi
}

ensure_chromium() {
  # Headless Chromium for the dashboard's browser test (driven by playwright-core).
  if [ -x /usr/bin/chromium ]; then return 0; fi
  _say "installing Chromium from Debian (for the dashboard browser test): apt-get install -y chromium"
  _as_root apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive _as_root apt-get install -y -qq chromium >&2
  [ -x /usr/bin/chromium ] || { _say "expected /usr/bin/chromium after installing it, found none"; return 1; }
}
