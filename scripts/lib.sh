# Shared helpers for scripts/*. Source it; do not run it.
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export ROOT

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# as_root runs a command as root (directly when we are root, else through sudo).
as_root() {
	if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# need_go puts Go on PATH and checks it is new enough for go.mod (Go >= 1.21
# fetches the toolchain go.mod names through the module proxy by itself).
need_go() {
	if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
		PATH=/usr/local/go/bin:$PATH
	fi
	command -v go >/dev/null 2>&1 || die "Go is not installed: install Go 1.26 (https://go.dev/doc/install) and run this again"
	local minor
	minor=$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')
	[ "${minor:-0}" -ge 21 ] || die "Go $(go env GOVERSION) is too old: cardagent needs Go 1.26 (Go 1.21 or later downloads it automatically)"
	PATH=$(go env GOPATH)/bin:$PATH
	export PATH
}

# The vpcd port Debian's vsmartcard-vpcd configures for the system pcscd (0x8C7B).
VPCD_PORT=${VPCD_PORT:-35963}
STATE_DIR=${CARDAGENT_STATE_DIR:-${XDG_RUNTIME_DIR:-/tmp}/cardagent-dev}
