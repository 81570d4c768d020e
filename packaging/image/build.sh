#!/usr/bin/env bash
# build.sh builds the bootable appliance disk image: Debian bookworm
# (debootstrap minbase + kernel + systemd), our .deb installed, serial
# console, UEFI boot with systemd-boot, as raw and qcow2:
#
#   packaging/image/build.sh [--deb FILE] [--out DIR] [--size 3G] [--config FILE]
#
#   --deb     the package to install (default: `make package`, newest dist/*.deb)
#   --out     output directory (default dist/): firewalliq.raw, firewalliq.qcow2
#   --size    raw disk size (default 3G; the file is sparse)
#   --config  a config.yaml to install instead of the packaged default
#   --overlay DIR  copy DIR's tree into the root file system and enable the
#             units under DIR/etc/systemd/system (the boot test's self-test)
#
# Nothing is mounted from the image: the root file system is made with
# `mkfs.ext4 -d`, the EFI system partition with mtools, and both are copied
# into a GPT disk at their offsets, so it needs no loop devices. On first
# boot, firewalliq-firstboot.service runs `firewalliq init` and writes the
# admin's one-time password and TOTP secret to the local console only
# (/dev/console; not the journal), then the appliance starts.
# Root, Debian; see docs/packaging.md#vm-image.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo="$(pwd)"

deb="" out="dist" size="3G" config="" overlay=""
while [ $# -gt 0 ]; do
	case "$1" in
	--deb) deb="$2"; shift 2 ;;
	--out) out="$2"; shift 2 ;;
	--size) size="$2"; shift 2 ;;
	--config) config="$2"; shift 2 ;;
	--overlay) overlay="$2"; shift 2 ;;
	*) echo "usage: $0 [--deb FILE] [--out DIR] [--size 3G] [--config FILE] [--overlay DIR]" >&2; exit 2 ;;
	esac
done
say() { printf '== image: %s\n' "$*"; }
[ "$(id -u)" -eq 0 ] || { echo "image: needs root (chroot, apt-get in the image)" >&2; exit 1; }

need=()
for t in mkfs.ext4:e2fsprogs mkfs.fat:dosfstools mcopy:mtools sfdisk:fdisk qemu-img:qemu-utils make:make; do
	command -v "${t%%:*}" >/dev/null || need+=("${t#*:}")
done
if [ "${#need[@]}" -gt 0 ]; then
	say "installing ${need[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if [ -z "$deb" ]; then
	make -s package >/dev/null
	deb="$(ls -t dist/firewalliq_*_amd64.deb | head -1)"
fi
[ -f "$deb" ] || { echo "image: no package $deb" >&2; exit 1; }
deb="$(cd "$(dirname "$deb")" && pwd)/$(basename "$deb")"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

tmp="$(mktemp -d /var/tmp/firewalliq-image.XXXXXX)"
root="$tmp/root"
unmount() {
	for m in dev/pts dev sys proc; do
		mountpoint -q "$root/$m" 2>/dev/null && umount -l "$root/$m"
	done
	return 0
}
trap 'unmount; rm -rf "$tmp"' EXIT

# --- root file system ---------------------------------------------------
# The base with kernel and systemd is cached next to the minbase tarball,
# keyed by its package list, so a second image build downloads nothing.
PACKAGES="linux-image-amd64 systemd systemd-sysv udev initramfs-tools systemd-boot-efi kmod iproute2 ca-certificates"
cache="${FIQ_PKGTEST_CACHE:-/var/tmp/firewalliq-pkgtest}"
base="$cache/bookworm-image-$(echo "$PACKAGES" | sha256sum | cut -c1-12).tar"
mkdir -p "$root"
if [ -s "$base" ]; then
	say "root file system from cache $base"
	tar -C "$root" -xf "$base"
else
	say "root file system: minbase + $PACKAGES (downloads ~150 MB, once)"
	tar -C "$root" -xf "$(packaging/debian-rootfs.sh)"
	mirror="$(packaging/debian-rootfs.sh --mirror)"
	mount -t proc proc "$root/proc"
	mount -t sysfs sys "$root/sys"
	mount --bind /dev "$root/dev"
	mount --bind /dev/pts "$root/dev/pts"
	printf 'deb %s bookworm main\ndeb %s bookworm-updates main\n' "$mirror" "$mirror" >"$root/etc/apt/sources.list"
	# No daemon may start inside the build chroot.
	printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
	chmod 755 "$root/usr/sbin/policy-rc.d"
	chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
		sh -c "apt-get update -qq && apt-get install -y -qq --no-install-recommends $PACKAGES && apt-get clean" \
		>"$tmp/apt.log" 2>&1 || { tail -30 "$tmp/apt.log"; echo "image: apt-get in the image failed" >&2; exit 1; }
	rm -rf "$root/var/lib/apt/lists/"*
	unmount
	tar -C "$root" -cf "$base.tmp" . && mv "$base.tmp" "$base"
fi

say "installing $(basename "$deb")"
mount -t proc proc "$root/proc"
cp "$deb" "$root/tmp/firewalliq.deb"
chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin dpkg -i /tmp/firewalliq.deb >"$tmp/dpkg.log" 2>&1 ||
	{ cat "$tmp/dpkg.log"; echo "image: dpkg -i failed" >&2; exit 1; }
rm -f "$root/tmp/firewalliq.deb"
[ -z "$config" ] || install -m 0644 "$config" "$root/etc/firewalliq/config.yaml"
umount "$root/proc"

# Fixed partition UUIDs: the kernel finds its root by PARTUUID, whatever
# the disk is called on the machine (vda, sda, nvme0n1).
ESP_UUID=6f1c0a5e-9a7e-4c59-8f2b-0f1b6a1e0001
ROOT_UUID=6f1c0a5e-9a7e-4c59-8f2b-0f1b6a1e0002

say "configuring the system"
echo firewalliq >"$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 firewalliq\n::1 localhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
printf 'PARTUUID=%s / ext4 errors=remount-ro 0 1\n' "$ROOT_UUID" >"$root/etc/fstab"
# An empty machine-id: systemd makes one on first boot, so every appliance
# made from this image has its own.
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id" "$root/usr/sbin/policy-rc.d"
printf 'FirewallIQ Secure appliance \\n (\\l)\nConsole: https://\\4:8443/\n\n' >"$root/etc/issue"
# No login for root: the appliance is managed through its console and API.
chroot "$root" passwd -l root >/dev/null
mkdir -p "$root/etc/systemd/network"
cat >"$root/etc/systemd/network/50-dhcp.network" <<'NET'
[Match]
Name=en* eth*

[Network]
DHCP=yes
NET
install -m 0644 packaging/image/firewalliq-firstboot.service "$root/etc/systemd/system/firewalliq-firstboot.service"
install -m 0755 packaging/image/firstboot.sh "$root/usr/lib/firewalliq-firstboot"
chroot "$root" systemctl enable systemd-networkd.service firewalliq-firstboot.service firewalliq.service >/dev/null 2>&1
if [ -n "$overlay" ]; then
	say "overlay $overlay"
	cp -a "$overlay/." "$root/"
	for u in "$overlay"/etc/systemd/system/*.service; do
		[ -e "$u" ] && chroot "$root" systemctl enable "$(basename "$u")" >/dev/null 2>&1
	done
fi
# systemd-firstboot would prompt for a locale on the serial console and
# wait there for an answer nobody gives.
chroot "$root" systemctl mask systemd-firstboot.service >/dev/null 2>&1

# --- EFI system partition: systemd-boot, kernel, initrd -------------------
say "EFI system partition"
kernel="$(ls "$root"/boot/vmlinuz-* | sort -V | tail -1)"
initrd="$(ls "$root"/boot/initrd.img-* | sort -V | tail -1)"
esp="$tmp/esp.img"
esp_mib=256
truncate -s "${esp_mib}M" "$esp"
mkfs.fat -F 32 -n ESP -i 46495131 "$esp" >/dev/null
export MTOOLS_SKIP_CHECK=1
mmd -i "$esp" ::/EFI ::/EFI/BOOT ::/loader ::/loader/entries
mcopy -i "$esp" "$root/usr/lib/systemd/boot/efi/systemd-bootx64.efi" ::/EFI/BOOT/BOOTX64.EFI
mcopy -i "$esp" "$kernel" ::/vmlinuz
mcopy -i "$esp" "$initrd" ::/initrd.img
printf 'default firewalliq.conf\ntimeout 0\nconsole-mode keep\n' >"$tmp/loader.conf"
mcopy -i "$esp" "$tmp/loader.conf" ::/loader/loader.conf
printf 'title FirewallIQ Secure\nlinux /vmlinuz\ninitrd /initrd.img\noptions root=PARTUUID=%s ro console=tty0 console=ttyS0,115200n8 quiet\n' "$ROOT_UUID" >"$tmp/entry.conf"
mcopy -i "$esp" "$tmp/entry.conf" ::/loader/entries/firewalliq.conf

# --- root partition and the disk --------------------------------------------
say "root file system image ($size disk)"
disk="$tmp/firewalliq.raw"
truncate -s "$size" "$disk"
disk_bytes=$(stat -c %s "$disk")
# GPT: 1 MiB alignment, ESP, root to the end (33 sectors kept for the backup GPT).
root_start_mib=$((1 + esp_mib))
root_mib=$(((disk_bytes / 1048576) - root_start_mib - 1))
rootimg="$tmp/root.img"
mkfs.ext4 -q -L fiqroot -d "$root" "$rootimg" "${root_mib}M"
sfdisk -q "$disk" <<PART
label: gpt
first-lba: 2048
start=1MiB, size=${esp_mib}MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=$ESP_UUID, name=ESP
start=${root_start_mib}MiB, size=${root_mib}MiB, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, uuid=$ROOT_UUID, name=root
PART
dd if="$esp" of="$disk" bs=1M seek=1 conv=notrunc,sparse status=none
dd if="$rootimg" of="$disk" bs=1M seek="$root_start_mib" conv=notrunc,sparse status=none

mv "$disk" "$out/firewalliq.raw"
qemu-img convert -O qcow2 "$out/firewalliq.raw" "$out/firewalliq.qcow2"
say "wrote $out/firewalliq.raw ($(du -h "$out/firewalliq.raw" | cut -f1) used of $size) and $out/firewalliq.qcow2 ($(du -h "$out/firewalliq.qcow2" | cut -f1))"
