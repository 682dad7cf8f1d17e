#!/bin/sh
# turbulence-agent postrm: forget the unit; on purge, the agent's journal.
set -e
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
fi
if [ "$1" = purge ]; then
	rm -rf /var/lib/turbulence
fi
