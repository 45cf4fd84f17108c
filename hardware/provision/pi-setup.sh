#!/usr/bin/env bash
# Provision a Raspberry Pi (Raspberry Pi OS / Debian Bookworm, 64-bit) as an unattended WildWatch
# edge node. Idempotent: a second run with the same options changes nothing and says "0 changes".
# Every file is written only when its content, mode or owner differ (install_file), every
# package, user, directory and symlink is created only when missing.
#
# Usage (as root, from a checkout of this repository or a copy of its hardware/ folder):
#   bash hardware/provision/pi-setup.sh --data-dir /srv/wildwatch --config node.yaml \
#       --models /media/usb/models [--central HOST] [--modem mmcli|hilink] [--overlay]
# See --help and README "Installing an edge node".
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
HW_DIR=$(dirname "$SCRIPT_DIR") # hardware/: systemd/, chrony/, provision/files/
PREFIX=/opt/wildwatch
VENV=$PREFIX/.venv
USER_NAME=wildwatch

usage() {
  cat <<'EOF'
pi-setup.sh — 边缘节点安装 provision a WildWatch edge node (run as root; safe to run again)

  --data-dir DIR     数据分区 data partition or USB SSD mount point for every write of WildWatch
                     (outbox, evidence, models, drop folders); default /srv/wildwatch
  --allow-root-fs    DIR need not be a mount point (tests, or a node without a data partition)
  --config FILE      node YAML, installed as /etc/wildwatch/node.yaml (0640 root:wildwatch);
                     its data_dir must lie under DIR, else the installed copy is rewritten to DIR/edge
  --models DIR       import the model files in DIR (wildwatch models import) into DIR/models
  --source SRC       what to pip install: a source tree or a wheel (default: this repository)
  --reinstall        pip install even when the same version is installed
  --central HOST     time source for chrony (default: the node YAML's mqtt.host)
  --modem KIND       none (default), mmcli (installs ModemManager) or hilink (nothing
                     extra: `wildwatch edge modem-reset --hilink` comes with wildwatch[edge])
  --overlay          read-only root with an overlay (raspi-config nonint do_overlayfs 0); a later
                     re-provision needs the overlay off first (do_overlayfs 1, reboot)
  -h, --help         this text

Old form, still accepted: pi-setup.sh MODELS_DIR NODE_YAML (with the options above).
EOF
}

die() {
  echo "错误 error: $*" >&2
  exit 1
}
warn() { echo "注意 warning: $*" >&2; }

DATA_DIR=/srv/wildwatch
ALLOW_ROOT_FS=0
CONFIG=""
MODELS=""
SOURCE=""
REINSTALL=0
CENTRAL=""
MODEM=none
OVERLAY=0
positional=()
while [ $# -gt 0 ]; do
  case $1 in
    --data-dir) DATA_DIR=${2:?--data-dir needs a directory}; shift 2 ;;
    --data-dir=*) DATA_DIR=${1#*=}; shift ;;
    --allow-root-fs) ALLOW_ROOT_FS=1; shift ;;
    --config) CONFIG=${2:?--config needs a file}; shift 2 ;;
    --config=*) CONFIG=${1#*=}; shift ;;
    --models) MODELS=${2:?--models needs a directory}; shift 2 ;;
    --models=*) MODELS=${1#*=}; shift ;;
    --source) SOURCE=${2:?--source needs a directory or wheel}; shift 2 ;;
    --source=*) SOURCE=${1#*=}; shift ;;
    --reinstall) REINSTALL=1; shift ;;
    --central) CENTRAL=${2:?--central needs a host}; shift 2 ;;
    --central=*) CENTRAL=${1#*=}; shift ;;
    --modem) MODEM=${2:?--modem needs none, mmcli or hilink}; shift 2 ;;
    --modem=*) MODEM=${1#*=}; shift ;;
    --overlay) OVERLAY=1; shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; positional+=("$@"); break ;;
    -*) usage >&2; die "unknown option $1" ;;
    *) positional+=("$1"); shift ;;
  esac
done
# the old positional form: MODELS_DIR NODE_YAML
if [ ${#positional[@]} -gt 0 ]; then
  [ ${#positional[@]} -le 2 ] || die "too many arguments: ${positional[*]}"
  [ -z "$MODELS" ] || die "models given twice"
  MODELS=${positional[0]}
  if [ ${#positional[@]} -eq 2 ]; then
    [ -z "$CONFIG" ] || die "config given twice"
    CONFIG=${positional[1]}
  fi
fi

case $MODEM in none | mmcli | hilink) ;; *) die "--modem must be none, mmcli or hilink" ;; esac
[ "$(id -u)" -eq 0 ] || die "run as root (sudo bash $0 ...)"
DATA_DIR=$(realpath -m "$DATA_DIR")
[ "$DATA_DIR" != / ] || die "--data-dir must not be /"
[[ $DATA_DIR =~ ^[A-Za-z0-9/._-]+$ ]] || die "--data-dir: letters, digits and / . _ - only (a unit file line)"
HOME_DIR=$DATA_DIR/home
[ -z "$CONFIG" ] || [ -f "$CONFIG" ] || die "no such node config: $CONFIG"
[ -z "$MODELS" ] || [ -d "$MODELS" ] || die "no such model folder: $MODELS"
if [ -z "$SOURCE" ]; then
  SOURCE=$(dirname "$HW_DIR")
  [ -f "$SOURCE/pyproject.toml" ] || die "not run from a checkout: give --source DIR|WHEEL"
fi
[ -e "$SOURCE" ] || die "no such source: $SOURCE"
SOURCE=$(realpath "$SOURCE")
if [ -n "$CENTRAL" ] && ! [[ $CENTRAL =~ ^[A-Za-z0-9.:-]+$ ]]; then
  die "--central must be a host name or an address, got '$CENTRAL'"
fi

# With a read-only root (overlay) everything written here would be gone at the next boot.
# (raspi-config's overlay puts boot=overlay on the kernel command line.)
if grep -qw 'boot=overlay' /proc/cmdline 2>/dev/null; then
  die "根文件系统为只读覆盖 the root file system is an overlay: turn it off first
  (raspi-config nonint do_overlayfs 1, reboot), provision, then turn it on again (--overlay)"
fi

# Every write of WildWatch goes on the data partition (or USB SSD), not on the SD card's root.
if [ "$ALLOW_ROOT_FS" -eq 0 ] && ! mountpoint -q "$DATA_DIR"; then
  die "$DATA_DIR 不是挂载点 is not a mount point: mount the data partition or USB SSD there
  (/etc/fstab, with noatime), or pass --allow-root-fs to keep the data on the root file system"
fi

START=$SECONDS
CHANGES=0
CHANGED=0       # set by the helpers: did the last step change anything?
NEED_REBOOT=0
RELOAD_UNITS=0
RESTART_NODE=0
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

changed() {
  CHANGES=$((CHANGES + 1))
  CHANGED=1
  echo "  已更改 changed: $*"
}

# install_file SRC DEST MODE OWNER:GROUP — copy SRC to DEST (atomically) only when the content,
# mode or owner differ; sets CHANGED and counts the change.
install_file() {
  local src=$1 dest=$2 mode=$3 owner=$4
  CHANGED=0
  if [ -f "$dest" ] && [ ! -L "$dest" ] && cmp -s "$src" "$dest" &&
    [ "$(stat -c '%a %U:%G' "$dest")" = "${mode#0} $owner" ]; then
    return 0
  fi
  mkdir -p "$(dirname "$dest")"
  install -m "$mode" -o "${owner%%:*}" -g "${owner##*:}" "$src" "$dest.wildwatch-new"
  mv -f "$dest.wildwatch-new" "$dest"
  changed "$dest"
}

# install_text DEST MODE OWNER:GROUP <<<"content"
install_text() {
  cat >"$WORK/text"
  install_file "$WORK/text" "$@"
}

# ensure_dir DIR MODE OWNER:GROUP
ensure_dir() {
  local dir=$1 mode=$2 owner=$3
  CHANGED=0
  if [ -d "$dir" ] && [ "$(stat -c '%a %U:%G' "$dir")" = "${mode#0} $owner" ]; then
    return 0
  fi
  install -d -m "$mode" -o "${owner%%:*}" -g "${owner##*:}" "$dir"
  changed "$dir/"
}

is_installed() {
  [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = installed ]
}

systemd_running() { [ -d /run/systemd/system ]; }

echo "== WildWatch 边缘节点安装 edge node provisioning (data: $DATA_DIR)"

# --- 1. Debian packages (apt only when one is missing: a second run does not touch apt) -------
packages=(python3 python3-venv chrony sudo systemd ca-certificates)
[ "$MODEM" = mmcli ] && packages+=(modemmanager)
# hilink: nothing to install (huawei-lte-api comes with wildwatch[edge])
missing=()
for pkg in "${packages[@]}"; do is_installed "$pkg" || missing+=("$pkg"); done
# The Pi camera's library comes from Raspberry Pi OS; elsewhere it does not exist.
if ! is_installed python3-picamera2 &&
  [ -n "$(apt-cache policy python3-picamera2 2>/dev/null | sed -n 's/^ *Candidate: //p' | grep -v '(none)' || true)" ]; then
  missing+=(python3-picamera2)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "-- apt-get install ${missing[*]}"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  changed "packages ${missing[*]}"
fi

# --- 2. user and directories -------------------------------------------------------------------
# The node runs as wildwatch; its home is on the data partition, so nothing it writes through
# $HOME (caches, onnxruntime's device id) lands on the SD card. video: Pi camera, USB cameras.
if ! id -u "$USER_NAME" >/dev/null 2>&1; then
  useradd --system --user-group --home-dir "$HOME_DIR" --no-create-home \
    --shell /usr/sbin/nologin "$USER_NAME"
  changed "user $USER_NAME"
fi
if [ "$(getent passwd "$USER_NAME" | cut -d: -f6)" != "$HOME_DIR" ]; then
  usermod --home "$HOME_DIR" "$USER_NAME"
  changed "home of $USER_NAME: $HOME_DIR"
fi
if getent group video >/dev/null && ! id -nG "$USER_NAME" | tr ' ' '\n' | grep -qx video; then
  usermod -aG video "$USER_NAME"
  changed "$USER_NAME in group video"
fi
ensure_dir "$DATA_DIR" 0755 root:root
ensure_dir "$HOME_DIR" 0750 "$USER_NAME:$USER_NAME"
ensure_dir "$DATA_DIR/edge" 0750 "$USER_NAME:$USER_NAME"
ensure_dir "$DATA_DIR/models" 0755 "$USER_NAME:$USER_NAME"
# drop folders: the cameras (FTP/SMB upload) write here; give their upload user the group
ensure_dir "$DATA_DIR/drop" 2775 "$USER_NAME:$USER_NAME"
ensure_dir /etc/wildwatch 0750 "root:$USER_NAME"
ensure_dir "$PREFIX" 0755 root:root

# --- 3. the light install: wildwatch[edge] in a virtualenv ------------------------------------
# --system-site-packages: Raspberry Pi OS's python3-picamera2 (apt) is importable from the venv.
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv --system-site-packages "$VENV"
  changed "virtualenv $VENV"
fi
if [ -f "$SOURCE" ]; then
  case $SOURCE in *.whl) ;; *) die "--source must be a directory or a .whl file" ;; esac
  # wildwatch-0.1.0-py3-none-any.whl
  want_version=$(basename "$SOURCE" | cut -d- -f2)
else
  [ -f "$SOURCE/pyproject.toml" ] || die "$SOURCE has no pyproject.toml"
  want_version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$SOURCE/pyproject.toml" | head -n1)
fi
have_version=$("$VENV/bin/python" -c \
  'import importlib.metadata as m; print(m.version("wildwatch"))' 2>/dev/null || true)
if [ "$REINSTALL" -eq 1 ] || [ "$have_version" != "$want_version" ]; then
  echo "-- pip install wildwatch[edge] $want_version (installed: ${have_version:-none})"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${SOURCE}[edge]"
  changed "wildwatch[edge] $want_version in $VENV"
  RESTART_NODE=1
fi
WILDWATCH=$VENV/bin/wildwatch

# --- 4. node configuration ---------------------------------------------------------------------
# The node's data_dir (default /var/lib/wildwatch/edge, on the SD card) must lie under the data
# directory: a node YAML without it, or with it elsewhere, is installed with data_dir DATA/edge.
# Drop folders and the releases folder outside the data directory are reported.
check_config() { # check_config SRC OUT — writes the checked copy to OUT, prints key=value lines
  "$VENV/bin/python" - "$1" "$2" "$DATA_DIR" <<'PY'
import os, re, sys
from pathlib import Path, PurePosixPath

import yaml

src, out, data = sys.argv[1], sys.argv[2], PurePosixPath(sys.argv[3])
text = Path(src).read_text(encoding="utf-8")
cfg = yaml.safe_load(text) or {}

def under(p):
    p = PurePosixPath(os.path.normpath(str(p)))
    return p == data or data in p.parents

want = data / "edge"
current = cfg.get("data_dir")
if current is None:
    text = text.rstrip("\n") + f"\n# pi-setup.sh: on the data partition\ndata_dir: {want}\n"
    print(f"note=data_dir 未设置 not set: {want}")
elif not under(current):
    text, n = re.subn(r"(?m)^data_dir:.*$", f"data_dir: {want}  # pi-setup.sh, was {current}", text)
    if n != 1:
        sys.exit(f"cannot rewrite data_dir {current} in {src}: set it under {data}")
    print(f"note=data_dir {current} 不在数据分区 not under {data}: now {want}")
for cam in cfg.get("cameras") or []:
    folder = cam.get("drop_folder")
    if folder and under(folder):
        print(f"drop={os.path.normpath(str(folder))}")
    elif folder:
        print(f"warn=camera {cam.get('id')}: drop folder {folder} is not under {data}")
releases = (cfg.get("updates") or {}).get("releases_dir")
if releases and not under(releases):
    print(f"warn=updates.releases_dir {releases} is not under {data}")
host = (cfg.get("mqtt") or {}).get("host")
if host:
    print(f"central={host}")
Path(out).write_text(text, encoding="utf-8")
PY
}

# validate with the node's own loader before installing
validate_config() {
  "$VENV/bin/python" -c 'import sys; from pathlib import Path
from edge.config import ConfigError, load_config
try:
    load_config(Path(sys.argv[1]))
except ConfigError as exc:
    sys.exit(str(exc))' "$1"
}

config_src=""
if [ -n "$CONFIG" ]; then
  config_src=$CONFIG
elif [ -f /etc/wildwatch/node.yaml ]; then
  config_src=/etc/wildwatch/node.yaml
else
  warn "没有节点配置 no node config (--config node.yaml): the node will not start without one"
fi
drops=()
if [ -n "$config_src" ]; then
  check_config "$config_src" "$WORK/node.yaml" >"$WORK/config.out"
  while IFS='=' read -r key value; do
    case $key in
      note) echo "  $value" ;;
      warn) warn "$value" ;;
      drop) drops+=("$value") ;;
      central) [ -n "$CENTRAL" ] || CENTRAL=$value ;;
    esac
  done <"$WORK/config.out"
  validate_config "$WORK/node.yaml" || die "node config $config_src is not valid"
  install_file "$WORK/node.yaml" /etc/wildwatch/node.yaml 0640 "root:$USER_NAME"
  [ "$CHANGED" -eq 0 ] || RESTART_NODE=1
  for folder in "${drops[@]}"; do
    ensure_dir "$folder" 2775 "$USER_NAME:$USER_NAME"
  done
fi
# edge.env holds the secrets (the broker password): created once, never overwritten.
if [ ! -e /etc/wildwatch/edge.env ]; then
  install_text /etc/wildwatch/edge.env 0640 "root:$USER_NAME" <<'EOF'
# 节点密钥 Secrets of this edge node (read by wildwatch-edge.service; never overwritten by
# pi-setup.sh). 代理密码 the broker password, from the broker's secrets.env:
# WILDWATCH_NODE_MQTT_PASSWORD=
EOF
fi
if grep -q '^WILDWATCH_MODELS_DIR=' /etc/wildwatch/edge.env &&
  ! grep -qx "WILDWATCH_MODELS_DIR=$DATA_DIR/models" /etc/wildwatch/edge.env; then
  warn "/etc/wildwatch/edge.env sets WILDWATCH_MODELS_DIR, which overrides $DATA_DIR/models: remove that line"
fi

# --- 5. models ---------------------------------------------------------------------------------
# `wildwatch models import` checks every file's sha256 and rewrites the store; the store's
# checksums before and after tell whether anything changed.
if [ -n "$MODELS" ]; then
  store_sums() { (cd "$DATA_DIR/models" && find . -type f -print0 | sort -z | xargs -0r sha256sum); }
  before=$(store_sums)
  runuser -u "$USER_NAME" -- env HOME="$HOME_DIR" WILDWATCH_MODELS_DIR="$DATA_DIR/models" \
    "$WILDWATCH" models import "$MODELS" >"$WORK/import.log" 2>&1 ||
    { cat "$WORK/import.log" >&2; die "model import from $MODELS failed"; }
  if [ "$(store_sums)" != "$before" ]; then
    changed "models in $DATA_DIR/models (from $MODELS)"
    RESTART_NODE=1
  fi
fi

# --- 6. the edge unit --------------------------------------------------------------------------
install_file "$HW_DIR/systemd/wildwatch-edge.service" /etc/systemd/system/wildwatch-edge.service 0644 root:root
[ "$CHANGED" -eq 0 ] || { RELOAD_UNITS=1; RESTART_NODE=1; }
install_text /etc/systemd/system/wildwatch-edge.service.d/10-provision.conf 0644 root:root <<EOF
# Written by hardware/provision/pi-setup.sh: the node's models and home on the data partition.
[Service]
Environment=WILDWATCH_MODELS_DIR=$DATA_DIR/models HOME=$HOME_DIR
EOF
[ "$CHANGED" -eq 0 ] || { RELOAD_UNITS=1; RESTART_NODE=1; }
if [ "$(systemctl is-enabled wildwatch-edge.service 2>/dev/null || true)" != enabled ]; then
  systemctl enable wildwatch-edge.service
  changed "enabled wildwatch-edge.service"
fi

# --- 7. SD card: journal and /tmp in RAM -------------------------------------------------------
install_file "$SCRIPT_DIR/files/journald-wildwatch.conf" /etc/systemd/journald.conf.d/wildwatch.conf 0644 root:root
JOURNALD_CHANGED=$CHANGED
if grep -Eq '^[^#[:space:]]+[[:space:]]+/tmp[[:space:]]' /etc/fstab 2>/dev/null; then
  echo "  /tmp: mounted by /etc/fstab, left as it is"
else
  install_file "$SCRIPT_DIR/files/tmp.mount" /etc/systemd/system/tmp.mount 0644 root:root
  [ "$CHANGED" -eq 0 ] || RELOAD_UNITS=1
  if [ "$(systemctl is-enabled tmp.mount 2>/dev/null || true)" != enabled ]; then
    systemctl enable tmp.mount
    changed "enabled tmp.mount (/tmp in RAM from the next boot)"
    NEED_REBOOT=1
  fi
fi
# noatime: advice only (fstab is the owner's); every read would otherwise be a write
for mnt in / "$DATA_DIR"; do
  opts=$(findmnt -no OPTIONS --target "$mnt" 2>/dev/null || true)
  if [ -n "$opts" ] && ! [[ ,$opts, == *,noatime,* ]]; then
    echo "  建议 advice: mount $(findmnt -no TARGET --target "$mnt") with noatime in /etc/fstab (now: $opts)"
  fi
done

# --- 8. hardware watchdog ----------------------------------------------------------------------
# A frozen Pi (kernel or PID 1 hung) is rebooted by the SoC's watchdog, which systemd pets; see
# files/watchdog.conf for the 15 s limit. The firmware switch lives in config.txt.
install_file "$SCRIPT_DIR/files/watchdog.conf" /etc/systemd/system.conf.d/wildwatch-watchdog.conf 0644 root:root
WATCHDOG_CHANGED=$CHANGED
for config_txt in /boot/firmware/config.txt /boot/config.txt; do
  if [ -f "$config_txt" ]; then
    if ! grep -qx 'dtparam=watchdog=on' "$config_txt"; then
      # [all]: the end of config.txt may be inside a model filter such as [cm5]
      printf '\n[all]\n# WildWatch: hardware watchdog (bcm2835_wdt), see pi-setup.sh\ndtparam=watchdog=on\n' >>"$config_txt"
      changed "$config_txt: dtparam=watchdog=on"
      NEED_REBOOT=1
    fi
    break
  fi
done

# --- 9. clock: chrony follows central ----------------------------------------------------------
if [ -n "$CENTRAL" ]; then
  [[ $CENTRAL =~ ^[A-Za-z0-9.:-]+$ ]] || die "mqtt.host '$CENTRAL' is not a host name"
  sed "s/@CENTRAL@/$CENTRAL/" "$HW_DIR/chrony/wildwatch-node.conf" >"$WORK/chrony.conf"
  install_file "$WORK/chrony.conf" /etc/chrony/conf.d/wildwatch.conf 0644 root:root
  CHRONY_CHANGED=$CHANGED
  # Debian's chrony.conf says `makestep 1 3` after including conf.d, which would override ours.
  if grep -Eq '^makestep' /etc/chrony/chrony.conf; then
    sed -i 's/^makestep/# WildWatch: see conf.d\/wildwatch.conf\n# makestep/' /etc/chrony/chrony.conf
    changed "/etc/chrony/chrony.conf: its makestep left to conf.d/wildwatch.conf"
    CHRONY_CHANGED=1
  fi
else
  CHRONY_CHANGED=0
  warn "没有时间源 no time source for chrony: give --central HOST or mqtt.host in the node config"
fi

# --- 10. 4G: the link watch may reset the modem and reboot (sudoers) ---------------------------
visudo -cqf "$SCRIPT_DIR/files/sudoers-wildwatch" || die "files/sudoers-wildwatch does not parse"
install_file "$SCRIPT_DIR/files/sudoers-wildwatch" /etc/sudoers.d/wildwatch 0440 root:root
visudo -cq || die "sudoers no longer parse after installing /etc/sudoers.d/wildwatch"
if [ "$MODEM" = mmcli ] && systemd_running &&
  [ "$(systemctl is-enabled ModemManager.service 2>/dev/null || true)" != enabled ]; then
  systemctl enable --now ModemManager.service
  changed "enabled ModemManager.service"
fi

# --- 11. read-only root (optional) -------------------------------------------------------------
if [ "$OVERLAY" -eq 1 ]; then
  if ! command -v raspi-config >/dev/null 2>&1; then
    warn "--overlay: raspi-config not found (not Raspberry Pi OS): root stays writable"
  elif ! grep -qs 'boot=overlay' /boot/firmware/cmdline.txt /boot/cmdline.txt; then
    # not yet configured (raspi-config puts boot=overlay on the kernel command line)
    raspi-config nonint do_overlayfs 0
    changed "overlay root enabled (read-only root from the next boot)"
    NEED_REBOOT=1
  fi
fi

# --- 12. apply to a running system (skipped in a chroot or image) ------------------------------
if systemd_running; then
  [ "$RELOAD_UNITS" -eq 0 ] || systemctl daemon-reload
  [ "$WATCHDOG_CHANGED" -eq 0 ] || systemctl daemon-reexec
  [ "$JOURNALD_CHANGED" -eq 0 ] || systemctl restart systemd-journald
  [ "$CHRONY_CHANGED" -eq 0 ] || systemctl restart chrony
  [ "$RESTART_NODE" -eq 0 ] || systemctl try-restart wildwatch-edge.service
else
  echo "  systemd 未运行 not running (chroot/image): reload and restarts skipped"
fi

echo "== $CHANGES changes ($((SECONDS - START)) s)"
[ "$NEED_REBOOT" -eq 0 ] || echo "需要重启 reboot needed for: watchdog, /tmp in RAM or overlay root"
grep -q '^WILDWATCH_NODE_MQTT_PASSWORD=.' /etc/wildwatch/edge.env ||
  echo "下一步 next: put WILDWATCH_NODE_MQTT_PASSWORD=... into /etc/wildwatch/edge.env, then systemctl start wildwatch-edge"
