# shellcheck shell=sh
# Guest network + soft-RoCE topology.  Run by guest-init.sh inside the guest
# root (host's iproute2) with VMTEST_MTU set.
#
#   rxe0 @ veth0 10.0.0.1/24  <---- veth pair ---->  veth1 10.0.0.2/24 @ rxe1
#
# Why two devices: on Linux 6.1 one rxe device talking to itself (the rxe
# loopback path) is slow for small messages and hangs for multi-packet ones.
# Why policy routing: both addresses are local to the guest, so by default
# 10.0.0.1 -> 10.0.0.2 would go through "lo", and rxe drops skbs that arrive
# on a netdev without an rxe device (QP to RTR fails).  The oif rules below
# consult per-device tables before the local table, so the packets leave by
# veth0 and arrive on veth1; accept_local/rp_filter let the peer accept them.
# (Two network namespaces do not work: rxe's UDP/4791 socket is init_net only.)
set -e
MTU=${VMTEST_MTU:-1500}
# rxe bursts (128 outstanding 64 KiB READs = 8192 packets) overflow veth's
# default 1000-packet backlog ("rdma_rxe: Failed sending ACK").
echo 65536 > /proc/sys/net/core/netdev_max_backlog
for i in all default; do
  echo 1 > /proc/sys/net/ipv4/conf/$i/accept_local
  echo 0 > /proc/sys/net/ipv4/conf/$i/rp_filter
done
ip -batch - <<IPB
link set lo up
link add veth0 type veth peer name veth1
link set veth0 mtu $MTU
link set veth1 mtu $MTU
addr add 10.0.0.1/24 dev veth0
addr add 10.0.0.2/24 dev veth1
link set veth0 up
link set veth1 up
rule add pref 1000 lookup local
rule del pref 0
route add 10.0.0.0/24 dev veth0 src 10.0.0.1 table 100
route add 10.0.0.0/24 dev veth1 src 10.0.0.2 table 101
rule add pref 10 oif veth0 lookup 100
rule add pref 11 oif veth1 lookup 101
IPB
for i in veth0 veth1; do
  echo 1 > /proc/sys/net/ipv4/conf/$i/accept_local
  echo 0 > /proc/sys/net/ipv4/conf/$i/rp_filter
done
rdma link add rxe0 type rxe netdev veth0
rdma link add rxe1 type rxe netdev veth1
# Wait for PORT_ACTIVE and the RoCE v2 IPv4 GID at index 1 (::ffff:10.0.0.x).
Z=0000:0000:0000:0000:0000:0000:0000:0000
for d in rxe0 rxe1; do
  n=0
  while :; do
    read -r g < /sys/class/infiniband/$d/ports/1/gids/1 || g=$Z
    read -r st < /sys/class/infiniband/$d/ports/1/state || st=
    if [ "$g" != "$Z" ]; then case "$st" in *ACTIVE*) break ;; esac; fi
    n=$((n + 1))
    [ $n -lt 200 ] || { echo "$d not ready after 10 s (gid[1]=$g state=$st)"; exit 1; }
    sleep 0.05
  done
done
rdma link show
