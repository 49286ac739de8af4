#!/usr/bin/env bash
# Installs the Debian packages strata's tests and services need, when missing.
# The agent speaks the FUSE protocol itself (libs/fuse-kernel) and needs no
# libfuse; fuse3 provides fusermount3 and /etc/fuse.conf for the other FUSE
# servers the tests run (qemu-storage-daemon, fuse2fs).
set -euo pipefail
packages=(fuse3 redis-server attr util-linux kmod e2fsprogs fdisk gdisk qemu-utils qemu-system-common fuse2fs xfsprogs btrfs-progs dosfstools mtools ntfs-3g lvm2 zstd)
# Disk-image tests: mke2fs, sfdisk, qemu-img, qemu-storage-daemon, fuse2fs; the
# filesystem and volume readers' truths: mkfs.xfs, mkfs.btrfs, mkfs.fat + mtools,
# mkntfs + ntfs-3g, LVM2 metadata tools (no activation: no device-mapper here).
# The side-by-side benchmark's peers and its Debian stack (npm run bench).
[ "${STRATA_BENCH:-}" = 1 ] && packages+=(fuse-overlayfs debootstrap rsync)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "strata: missing Debian packages: ${missing[*]} (run as root to install them)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  start=$SECONDS
  echo "strata setup: apt-get update (package lists)..." >&2
  apt-get update -qq
  echo "strata setup: installing ${#missing[@]} Debian packages: ${missing[*]} (a minute or two on a fresh machine)..." >&2
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "strata setup: Debian packages installed in $((SECONDS - start)) s" >&2
else
  echo "strata setup: every Debian package needed is installed" >&2
fi
# The kernel reference of the differential tests.
if [ "$(id -u)" -eq 0 ] && ! grep -qw overlay /proc/filesystems; then
  modprobe overlay 2>/dev/null || echo "strata: overlayfs is not available; differential tests will be skipped" >&2
fi
# FUSE mounts of the agent.
if [ "$(id -u)" -eq 0 ] && [ ! -e /dev/fuse ]; then
  modprobe fuse 2>/dev/null || echo "strata: /dev/fuse is missing; agent tests will be skipped" >&2
fi
