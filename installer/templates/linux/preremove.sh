#!/bin/sh
# cardagent package: before removal (deb: remove/upgrade; rpm: 0 = erase, 1 = upgrade).
set -e
FIREFOX_POLICY="{{.FirefoxPolicy}}"
FIREFOX_SOURCE="{{.FirefoxSource}}"
case "${1:-}" in
remove | 0)
	# Stop the agent in running sessions.
	if [ -d /run/systemd/system ] && command -v loginctl >/dev/null 2>&1; then
		for user in $(loginctl list-users --no-legend 2>/dev/null | awk '{ print $2 }'); do
			systemctl --user -M "$user@" stop {{.Unit}} >/dev/null 2>&1 || true
		done
	fi
	# Remove the Firefox policy only if it is still exactly the one we installed.
	if [ -e "$FIREFOX_POLICY" ] && cmp -s "$FIREFOX_SOURCE" "$FIREFOX_POLICY"; then
		rm -f "$FIREFOX_POLICY"
		rmdir "$(dirname "$FIREFOX_POLICY")" 2>/dev/null || true
		rmdir "$(dirname "$(dirname "$FIREFOX_POLICY")")" 2>/dev/null || true
	fi
	;;
esac
exit 0
