#!/bin/sh
# turbulence-controller prerm: stop the node (a leader hands leadership
# over first). Upgrade a cluster one node at a time.
set -e
[ -d /run/systemd/system ] || exit 0
case "$1" in
remove | purge | deconfigure | 0)
	systemctl disable --now turbulence-controller.service || true
	;;
*)
	systemctl stop turbulence-controller.service || true
	;;
esac
