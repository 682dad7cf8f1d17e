#!/bin/sh
# turbulence-agent postinst (deb: "configure"; rpm: 1 install, 2 upgrade).
# Reload systemd and load the network modules now; start the agent only if
# its certificates are in place: without them it could only fail and loop.
set -e

case "$1" in
configure | 1 | 2) ;;
*) exit 0 ;;
esac

# ROOT is empty on a host; test/packaging points it at a scratch tree.
ROOT=${TURBULENCE_PKG_ROOT:-}
[ -d "$ROOT/run/systemd/system" ] || exit 0 # no systemd running (a chroot, an image build)

systemctl daemon-reload || true
systemctl restart systemd-modules-load.service || true

tls=$ROOT/etc/turbulence/tls
if [ -f "$tls/ca.crt" ] && [ -f "$tls/agent.crt" ] && [ -f "$tls/agent.key" ]; then
	systemctl enable turbulence-agent.service
	# A unit that fails to start leaves the package installed and says so.
	systemctl restart turbulence-agent.service ||
		echo "turbulence-agent did not start: journalctl -u turbulence-agent" >&2
else
	cat <<MSG
turbulence-agent is installed but not started: it has no certificates yet.
Provision them, then start it:
  $tls/ca.crt      the fleet's CA certificate
  $tls/agent.crt   this host's agent certificate (its name is the agent ID)
  $tls/agent.key   its key (mode 0600)
(on the machine that holds the CA: turbctl tls cert create --role agent --name <agent ID> …;
 see turbctl tls cert create --help)
Set the controller address in /etc/default/turbulence-agent, then:
  systemctl enable --now turbulence-agent
MSG
fi
