#!/usr/bin/env bash
# The portable path on aarch64, without an aarch64 machine: a Debian 12 arm64 root made by
# debootstrap, run under qemu-user through binfmt_misc; cece installed there as README.md
# says (pip install ".[test]") and the whole test suite run. Needs root (chroot, mounts).
#
#   tools/aarch64_check.sh [ROOTFS_DIR] [pytest args]
#
# ROOTFS_DIR (default /var/tmp/cece-arm64) is made on the first run (about 10 minutes) and
# kept for later ones; each run copies the checkout's files (tracked and untracked, not
# ignored) into it afresh. Everything is emulated: the build takes about 3 minutes and the
# suite about 8 on two cores. Packages come from Debian's mirror and PyPI only.
#
# Not run by .ci/run: it needs root, binfmt_misc and about 20 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
rootfs=${1:-/var/tmp/cece-arm64}
shift || true

if [ "$(id -u)" != 0 ]; then
    echo "aarch64_check: needs root (debootstrap, chroot, mounts)" >&2
    exit 2
fi
if ! command -v debootstrap >/dev/null || ! command -v update-binfmts >/dev/null ||
   [ ! -e /usr/bin/qemu-aarch64-static ]; then
    apt-get install -y -qq qemu-user-static debootstrap binfmt-support
fi
if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
fi
# qemu-user-static registers its interpreters when installed; a mount made after that
# starts empty, so register aarch64 again where it is missing
if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    update-binfmts --enable qemu-aarch64
fi

if [ ! -x "$rootfs/usr/bin/python3" ]; then
    debootstrap --arch=arm64 \
        --include=python3,python3-venv,python3-dev,gcc,g++,libgomp1,ca-certificates \
        bookworm "$rootfs" http://deb.debian.org/debian
fi
cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
# the host's CA bundle too: behind a proxy that inspects TLS it holds the proxy's CA, without
# which the root's pip cannot reach PyPI (the bundle is plain PEM, the same on any arch)
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
fi

mounts=()
cleanup() {
    for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount "${mounts[i]}" || true; done
}
trap cleanup EXIT
for fs in proc dev sys; do
    if [ "$fs" = proc ]; then mount -t proc proc "$rootfs/proc"; else mount --bind "/$fs" "$rootfs/$fs"; fi
    mounts+=("$rootfs/$fs")
done

rm -rf "$rootfs/root/cece"
mkdir -p "$rootfs/root/cece"
git -C "$root" ls-files -z --cached --others --exclude-standard |
    (cd "$root" && xargs -0 tar cf - --no-recursion) | tar xf - -C "$rootfs/root/cece"

args=$(printf ' %q' "$@")
# the host's pip settings name folders the root does not have
env -u PIP_FIND_LINKS chroot "$rootfs" /bin/bash -euc "
    cd /root
    rm -rf venv && python3 -m venv venv && . venv/bin/activate
    python -m pip install --quiet --upgrade pip
    cd cece
    python -m pip install --quiet '.[test]'
    (cd /root && python -c 'import cece, platform; print(platform.machine()); cece.show_config()')
    pytest -q -p no:cacheprovider$args
"
