#!/bin/sh
# /usr/lib/firewalliq-firstboot: run once by firewalliq-firstboot.service.
# Creates the appliance's data directory, keys, console certificate and the
# first admin ("admin"), hands the directory to the service user, and prints
# the one-time password and TOTP secret to stdout, which the unit connects
# to the local console only.
set -eu
DATA=/var/lib/firewalliq
[ -e "$DATA/firewalliq.db" ] && exit 0
echo
echo "FirewallIQ Secure: first boot, initialising $DATA"
firewalliq --config /etc/firewalliq/config.yaml init --data "$DATA" --admin admin --host "$(hostname)"
chown -R firewalliq:firewalliq "$DATA"
echo "The console starts now on port 8443 (see /etc/issue for the address)."
echo
