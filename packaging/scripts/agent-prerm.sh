#!/bin/sh
# turbulence-agent prerm (deb: remove, upgrade, deconfigure; rpm: 0 remove,
# 1 upgrade). Stopping the agent reverts every fault it holds (invariant 3);
# an upgrade starts the new one in postinst.
set -e
[ -d /run/systemd/system ] || exit 0
case "$1" in
remove | purge | deconfigure | 0)
	systemctl disable --now turbulence-agent.service || true
	;;
*)
	systemctl stop turbulence-agent.service || true
	;;
esac
