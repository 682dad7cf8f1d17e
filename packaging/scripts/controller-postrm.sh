#!/bin/sh
# turbulence-controller postrm: forget the unit. The raft data under
# /var/lib/turbulence-controller is kept even on purge: it is the
# cluster's state, and removing a node is `turbctl cluster remove`.
set -e
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
fi
