# shellcheck shell=sh
# vmtest stage 2, run by busybox sh as PID 1 from the control share
# (/mnt/ctl = the host run directory).  Builds the guest root, sets up rxe,
# runs the command, reports its status, powers off.
#
# Root: host / over 9p (read-only, cache=loose) as the lower layer of an
# overlay whose upper layer is a tmpfs: host binaries and libraries run
# unchanged, writes outside the shares are discarded at poweroff.
# Reporting: the status goes to /mnt/ctl/rc and, as a fallback for the host,
# to the console as "VMTEST_RC=<n>".
up() { cut -d' ' -f1 /proc/uptime; }
say() { echo "[vmtest-guest $(up)] $*"; }
finish() {  # finish RC
  dmesg > /mnt/ctl/dmesg.txt 2>/dev/null
  echo "$1" > /mnt/ctl/rc
  sync
  echo "VMTEST_RC=$1"
  poweroff -f
}
fatal() { say "FATAL: $*"; finish 125; }

. /mnt/ctl/config || fatal "cannot read /mnt/ctl/config"
O9P=trans=virtio,version=9p2000.L,msize=262144
modprobe overlay || fatal "modprobe overlay"
mkdir -p /mnt/lower /mnt/rw
mount -t 9p -o $O9P,ro,cache=loose hostroot /mnt/lower || fatal "mount of the host root (hostroot) failed"
mount -t tmpfs -o mode=0755 tmpfs /mnt/rw
mkdir -p /mnt/rw/upper /mnt/rw/work
mount -t overlay overlay -o lowerdir=/mnt/lower,upperdir=/mnt/rw/upper,workdir=/mnt/rw/work /newroot \
  || fatal "overlay mount failed"
R=/newroot
mount -t proc proc $R/proc
mount -t sysfs sys $R/sys
mount -t devtmpfs dev $R/dev
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts -o ptmxmode=0666 devpts $R/dev/pts
mount -t tmpfs tmpfs $R/dev/shm
mount -t tmpfs -o mode=0755 tmpfs $R/run     # fresh, like a booted system
mount -t tmpfs tmpfs $R/mnt                  # hides the host's /mnt
mkdir -p $R/run/vmtest
mount --bind /mnt/ctl $R/run/vmtest
# Read-write shares at their host paths (parents first: the host sorts them).
i=0
while [ "$i" -lt "$VMTEST_NSHARES" ]; do
  p=; eval p=\$VMTEST_SHARE_$i
  mkdir -p "$R$p" 2>/dev/null
  mount -t 9p -o $O9P,cache=mmap "share$i" "$R$p" || fatal "mount of share$i at $p failed"
  i=$((i + 1))
done
say "root mounted"

if [ "$VMTEST_RXE" = 1 ]; then
  for m in crc32_generic rdma_rxe rdma_ucm ib_umad veth; do modprobe "$m" || fatal "modprobe $m"; done
  # Runs in the guest root so that it uses the host's iproute2 (ip, rdma).
  chroot $R /bin/sh /run/vmtest/rxe-setup.sh || fatal "rxe setup failed (see the lines above)"
  say "rxe ready"
fi

say "running command"
chroot $R /usr/bin/timeout -k 5 "$VMTEST_GUEST_TIMEOUT" /bin/bash /run/vmtest/cmd.sh </dev/null
rc=$?
say "command exited with $rc"
finish $rc
