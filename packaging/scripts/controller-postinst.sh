#!/bin/sh
# turbulence-controller postinst (deb: "configure"; rpm: 1 install, 2
# upgrade). Reload systemd; start the node only when it has certificates
# and a configuration (TURBULENCE_CONTROLLER_ARGS), which an operator
# writes: a node started with neither could only fail or stand alone.
set -e

case "$1" in
configure | 1 | 2) ;;
*) exit 0 ;;
esac

# ROOT is empty on a host; test/packaging points it at a scratch tree.
ROOT=${TURBULENCE_PKG_ROOT:-}
[ -d "$ROOT/run/systemd/system" ] || exit 0

systemctl daemon-reload || true

TURBULENCE_CONTROLLER_ARGS=
if [ -f "$ROOT/etc/default/turbulence-controller" ]; then
	. "$ROOT/etc/default/turbulence-controller"
fi
tls=$ROOT/etc/turbulence/tls
if [ -f "$tls/ca.crt" ] && [ -f "$tls/controller.crt" ] && [ -f "$tls/controller.key" ] && [ -n "$TURBULENCE_CONTROLLER_ARGS" ]; then
	systemctl enable turbulence-controller.service
	# A unit that fails to start leaves the package installed and says so.
	systemctl restart turbulence-controller.service ||
		echo "turbulence-controller did not start: journalctl -u turbulence-controller" >&2
else
	cat <<MSG
turbulence-controller is installed but not started. Provide
  $tls/ca.crt, $tls/controller.crt, $tls/controller.key (mode 0600)
  (turbctl tls ca create; turbctl tls cert create --role controller …)
and this node's flags in /etc/default/turbulence-controller, then:
  systemctl enable --now turbulence-controller
MSG
fi
