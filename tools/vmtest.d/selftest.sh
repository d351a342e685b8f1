# shellcheck shell=bash
# vmtest selftest, guest side (bash, run as the command by tools/vmtest
# selftest).  Proves PKU and real verbs/rdma_cm traffic between rxe0 and rxe1.
# Servers bind rxe1 (10.0.0.2), clients use rxe0 (10.0.0.1); perftest and
# ibv_rc_pingpong exchange their QP info over TCP on 127.0.0.1.
# Last line: "N passed, N failed"; exit status non-zero on any failure.
pass=0 fail=0
ok()  { pass=$((pass + 1)); echo "SELFTEST PASS: $*"; }
bad() { fail=$((fail + 1)); echo "SELFTEST FAIL: $*"; }
up()  { cut -d' ' -f1 /proc/uptime; }
txp() { cat /sys/class/net/veth0/statistics/tx_packets; }
T=/tmp/selftest; mkdir -p $T

# wait_tcp PORT: until a TCP listener on PORT exists (max 20 s), else sleep 1.
wait_tcp() {

  for _ in $(seq 200); do
    [ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ] && return 0
    sleep 0.1
  done
}
# pair NAME PORT|- SERVER-CMD CLIENT-CMD
pair() {
  local name=$1 port=$2 t0 p0 sp cr sr
  t0=$(up); p0=$(txp)
  timeout 120 bash -c "$3" > $T/$name.srv 2>&1 & sp=$!
  if [ "$port" = - ]; then sleep 1; else wait_tcp "$port"; fi
  timeout 120 bash -c "$4" > $T/$name.cli 2>&1; cr=$?
  wait $sp; sr=$?
  if [ $cr = 0 ] && [ $sr = 0 ]; then
    ok "$name ($(up | awk -v a="$t0" '{printf "%.1f", $1 - a}') s, veth0 tx +$(( $(txp) - p0 )) pkts)"
  else
    bad "$name (server rc=$sr, client rc=$cr)"
    tail -n 8 $T/$name.srv $T/$name.cli
  fi
}
lat() {  # perftest latency table: bytes iters t_min t_max t_typical t_avg ...
  awk -v n="$1" '$1 ~ /^[0-9]+$/ && NF >= 6 {
    printf "RESULT %-14s %5d B: t_typical %8.2f us  t_avg %8.2f us  t_min %8.2f us (%d iters)\n", n, $1, $5, $6, $3, $2}' $T/$1.cli
}
bw() {
  awk -v n="$1" '$1 ~ /^[0-9]+$/ && NF >= 4 {
    printf "RESULT %-14s %5d B: BW avg %8.2f MB/s  peak %8.2f MB/s\n", n, $1, $4, $3}' $T/$1.cli
}

echo "guest: $(uname -r), $(nproc) vCPU, $(awk '/MemTotal/{print int($2/1024)}' /proc/meminfo) MiB"
ibv_devices
ibv_devinfo -d rxe0 | grep -E 'state|active_mtu|link_layer'

if grep -qw pku /proc/cpuinfo && grep -qw ospke /proc/cpuinfo; then ok "cpu flags pku ospke"
else bad "cpu flags: pku/ospke missing from /proc/cpuinfo"; fi
"$VMTEST_PKEY_BIN"; r=$?
if [ $r = 0 ]; then ok "pkey_test"; else bad "pkey_test (rc=$r)"; fi

G="-x $VMTEST_GID_INDEX -F"
pair rc_pingpong 18515 "ibv_rc_pingpong -d rxe1 -g $VMTEST_GID_INDEX -n 200" \
                       "ibv_rc_pingpong -d rxe0 -g $VMTEST_GID_INDEX -n 200 127.0.0.1"
grep -h 'usec/iter' $T/rc_pingpong.cli | sed 's/^/RESULT rc_pingpong(send) 4096 B: /'
for s in 8 4096; do
  pair write_lat_$s 18515 "ib_write_lat -d rxe1 $G -s $s -n 1000" "ib_write_lat -d rxe0 $G -s $s -n 1000 127.0.0.1"
  lat write_lat_$s
  pair read_lat_$s 18515 "ib_read_lat -d rxe1 $G -s $s -n 1000" "ib_read_lat -d rxe0 $G -s $s -n 1000 127.0.0.1"
  lat read_lat_$s
done
pair read_bw 18515  "ib_read_bw -d rxe1 $G -s 65536 -n 200"  "ib_read_bw -d rxe0 $G -s 65536 -n 200 127.0.0.1"
bw read_bw
pair write_bw 18515 "ib_write_bw -d rxe1 $G -s 65536 -n 200" "ib_write_bw -d rxe0 $G -s 65536 -n 200 127.0.0.1"
bw write_bw
# rdma_cm: the client must bind its source address (-I), else the route to a
# local destination picks the peer's own device (rxe loopback, fails).
pair rping - "rping -s -a $VMTEST_IP1 -C 50" "rping -c -a $VMTEST_IP1 -I $VMTEST_IP0 -C 50 -v -S 64"

echo "veth0 tx_packets=$(cat /sys/class/net/veth0/statistics/tx_packets) veth1 rx_packets=$(cat /sys/class/net/veth1/statistics/rx_packets)"
echo "$pass passed, $fail failed"
[ $fail = 0 ]
