#!/bin/sh
# cardagent package: after removal (deb: remove/purge/upgrade; rpm: 0 = erase, 1 = upgrade).
set -e
case "${1:-}" in
purge)
	# dpkg removed the configuration files it owns; remove what the agent or
	# the administrator added in its configuration directory.
	rm -rf "{{.ConfigDir}}"
	;;
esac
exit 0
