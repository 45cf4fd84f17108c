#!/usr/bin/env bash
# Provision a Raspberry Pi (Raspberry Pi OS Bookworm, 64-bit) as a WildWatch edge node.
# Usage (as root, from a checkout of this repository, with the model folder on a USB stick):
#   bash hardware/provision/pi-setup.sh /media/usb/models /path/to/node.yaml
set -euo pipefail
MODELS_SRC=${1:?model folder (e.g. /media/usb/models)}
NODE_YAML=${2:?node configuration YAML}
REPO=$(cd "$(dirname "$0")/../.." && pwd)
PREFIX=/opt/wildwatch

apt-get update -qq
apt-get install -y -qq python3-venv python3-dev libgl1 chrony
# picamera2 comes from Raspberry Pi OS; install it where present so picamera: sources work.
apt-get install -y -qq python3-picamera2 2>/dev/null || echo "picamera2 not available: skipped"

id wildwatch >/dev/null 2>&1 || useradd --system --create-home --home-dir /var/lib/wildwatch \
  --groups video wildwatch
install -d -o wildwatch -g wildwatch /var/lib/wildwatch /srv/wildwatch/drop /etc/wildwatch

python3 -m venv --system-site-packages "$PREFIX/.venv"
# the node only (wildwatch[edge]): no web server, database drivers or embedded broker
"$PREFIX/.venv/bin/pip" install -q "$REPO[edge]"
sudo -u wildwatch WILDWATCH_MODELS_DIR=/var/lib/wildwatch/models \
  "$PREFIX/.venv/bin/wildwatch" models import "$MODELS_SRC"

install -m 0640 -o root -g wildwatch "$NODE_YAML" /etc/wildwatch/node.yaml
[ -f /etc/wildwatch/edge.env ] || install -m 0640 -o root -g wildwatch /dev/null /etc/wildwatch/edge.env
grep -q WILDWATCH_MODELS_DIR /etc/wildwatch/edge.env ||
  echo "WILDWATCH_MODELS_DIR=/var/lib/wildwatch/models" >> /etc/wildwatch/edge.env
echo "Put WILDWATCH_NODE_MQTT_PASSWORD=... (from the broker's secrets.env) into /etc/wildwatch/edge.env"

install -m 0644 "$REPO/hardware/systemd/wildwatch-edge.service" /etc/systemd/system/
systemctl daemon-reload
systemctl enable wildwatch-edge.service
# SD-card care: keep the journal in RAM-backed storage with a cap; the outbox is the only
# thing that must survive a power cut and it is written with fsync.
mkdir -p /etc/systemd/journald.conf.d
printf '[Journal]\nStorage=volatile\nRuntimeMaxUse=50M\n' > /etc/systemd/journald.conf.d/wildwatch.conf
# Hardware watchdog: reboot a hung Pi.
mkdir -p /etc/systemd/system.conf.d
printf '[Manager]\nRuntimeWatchdogSec=15\n' > /etc/systemd/system.conf.d/watchdog.conf
echo "Provisioned. Start with: systemctl start wildwatch-edge"
