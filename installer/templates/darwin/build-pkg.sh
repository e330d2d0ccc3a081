#!/bin/sh
# Finishes the cardagent macOS package on a Mac (pkgbuild and productbuild
# ship with the Xcode command line tools). Run it from this directory:
#   ./build-pkg.sh [--sign "Developer ID Installer: ..."]
set -eu
cd "$(dirname "$0")"
[ -x "root{{.Exec}}" ] || { echo "root{{.Exec}} is missing: build it on a Mac (see README.txt)" >&2; exit 1; }
[ -x "root{{.TrayExec}}" ] || { echo "root{{.TrayExec}} is missing: build it on a Mac (see README.txt)" >&2; exit 1; }
pkgbuild --root root --scripts scripts --identifier "{{.Label}}" --version "{{.Version}}" \
	--install-location / --ownership recommended cardagent-component.pkg
if [ "${1:-}" = "--sign" ]; then
	productbuild --package cardagent-component.pkg --sign "$2" "cardagent-{{.Version}}.pkg"
else
	productbuild --package cardagent-component.pkg "cardagent-{{.Version}}.pkg"
fi
rm -f cardagent-component.pkg
echo "built cardagent-{{.Version}}.pkg"
