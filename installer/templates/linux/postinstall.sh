#!/bin/sh
# cardagent package: after install or upgrade (deb: configure; rpm: 1 or 2).
set -e
FIREFOX_POLICY="{{.FirefoxPolicy}}"
FIREFOX_SOURCE="{{.FirefoxSource}}"

# Firefox reads a single policies.json for all of its policies: install ours
# only when there is none, so an existing policy is never overwritten.
if [ ! -e "$FIREFOX_POLICY" ]; then
	mkdir -p "$(dirname "$FIREFOX_POLICY")"
	cp "$FIREFOX_SOURCE" "$FIREFOX_POLICY"
	chmod 644 "$FIREFOX_POLICY"
elif ! cmp -s "$FIREFOX_SOURCE" "$FIREFOX_POLICY"; then
	echo "cardagent: $FIREFOX_POLICY exists: add the LocalNetworkAccess policy from $FIREFOX_SOURCE to it (see docs/deployment.md)" >&2
fi

# The user unit is enabled for every user by the package's symlink in
# /etc/systemd/user/default.target.wants. Start it now in the sessions of
# users already logged in (best effort: systemd only).
if [ -d /run/systemd/system ] && command -v loginctl >/dev/null 2>&1; then
	for user in $(loginctl list-users --no-legend 2>/dev/null | awk '{ print $2 }'); do
		systemctl --user -M "$user@" daemon-reload >/dev/null 2>&1 || true
		systemctl --user -M "$user@" restart {{.Unit}} >/dev/null 2>&1 || true
	done
fi
exit 0
