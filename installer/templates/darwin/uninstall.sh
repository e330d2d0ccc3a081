#!/bin/sh
# Removes cardagent from this Mac: sudo {{.UninstallScript}} [--purge]
# (--purge also removes the configuration in {{.ConfigDir}}).
set -u
[ "$(id -u)" -eq 0 ] || { echo "run this with sudo" >&2; exit 1; }
LABEL="{{.Label}}"
for uid in $(ps -axo uid=,comm= | awk '$2 ~ /loginwindow$/ { print $1 }' | sort -u); do
	launchctl bootout "gui/$uid/$LABEL" 2>/dev/null || true
done
rm -f "{{.Plist}}" "{{.Exec}}" "{{.TrayExec}}" "{{.ConfigDir}}/config.json.default"
if [ "${1:-}" = "--purge" ]; then
	rm -rf "{{.ConfigDir}}"
fi
pkgutil --forget "{{.Label}}" >/dev/null 2>&1 || true
rm -f "{{.UninstallScript}}"
echo "cardagent removed"
