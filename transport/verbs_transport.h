// The verbs backend: one-sided operations and messages over RDMA (RoCE /
// InfiniBand / soft-RoCE rxe) with libibverbs + librdmacm.
//
// Design (see verbs_transport_setup.cc / verbs_transport_datapath.cc):
//  * One device per transport: PD, one CQ with a completion channel, and a
//    progress thread that blocks in poll() on the completion channel, the
//    rdma_cm event channel and a wake-up eventfd (no busy spin when idle).
//    Waiters also drain the CQ through Poll().
//  * Connections are lazy RC QPs made with librdmacm. Every rank runs an
//    rdma_cm listener (bound to its IPv4 address, port chosen by the kernel,
//    advertised in the endpoint blob). A rank opens its OWN outgoing QPs to
//    a peer (one QP per direction and pair, so there is never a connect
//    race, as in the tcp backend); in fact two per direction: an "ops" QP for
//    READ / WRITE / atomics and a "msg" QP for SEND/RECV messages. An RC QP
//    goes to the error state on a remote access error; keeping messages on
//    their own QP means a refused one-sided op never loses a message. A QP in
//    error is torn down and reconnected lazily on the next Post.
//  * The connecting side always binds its source address before
//    rdma_resolve_addr (soft-RoCE pitfall: otherwise route resolution can
//    pick the peer's device and the broken rxe loopback path). When the peer
//    advertises the very same IPv4 address as this rank (two ranks on one
//    rxe device), the source is the IPv4 of another active device of the
//    list (alt_ip) if there is one, so traffic still crosses the wire
//    between two devices.
//  * Ops to self (peer == rank) are executed locally with memcpy / __atomic
//    after the same rkey / bounds / rights checks a NIC would make: rxe's
//    self-loopback path hangs on multi-packet messages, and the CPU path is
//    faster anyway. Self atomics, however, go through the device over a
//    QP to this rank's own listener (source alt_ip when set), so they stay
//    atomic with the peers' HCA atomics. Capabilities::cpu_atomics_coherent
//    is false: HCA (and rxe) atomics are not atomic with CPU atomics.
//  * Only one device is registered for remote access (the listener's);
//    a second device (alt_ip) only gets its own PD / CQ / bounce pool.
//  * Selective signaling: the ops of one Post are grouped by peer and
//    posted as chains (up to 64 WRs, one ibv_post_send); only a chain's
//    last WR is signaled. Each ops QP keeps its outstanding slots in
//    posting order: a completion also completes (successfully) the
//    unsignaled ones before it; errors and flushes complete on their own.
//    Flushes of a peer that died count as kPeerUnreachable.
//  * WRITEs up to the QP's max_inline_data (64 requested) are sent inline.
//  * Zero copy: a local buffer inside a region registered with this
//    transport (Register) is used directly with that MR's lkey (sorted
//    table, binary search). Other buffers are never registered on the fly:
//    they go through a registered bounce buffer (a pool of 4 KiB slots, or
//    a per-op registered allocation for large ones); atomics return into
//    the pool. Abandon() of a zero-copy op moves its QP to the error state
//    (a late reply must not land in the caller's buffer; the QP is
//    reconnected on the next Post); a late bounced READ is dropped.
//  * Completion: Wait spins on Poll (try_lock on the CQ, ibv_poll_cq in
//    batches) for GASP_SPIN_US, so the waiter reaps its own completion;
//    while a waiter spins the progress thread leaves the CQ notification
//    disarmed (no wake-ups), re-arming within 1 ms once nobody spins. A
//    waiter that stops spinning arms the CQ itself and blocks.
//  * Not yet: SRQ, per-thread send queues.
//  * Messages: tag + length header in the first chunk, payload chunked to
//    the receive buffer size, per-QP posted receive pool, RC keeps order.
//
// Settings (TransportOptions, from base/settings.cc):
//  * GASP_NET_DEVICES (net_devices): "dev:port,dev:port" (port defaults to
//    1), "^dev" / "^dev:port" excludes, "" = every device with an active
//    port in ibv_get_device_list order. Only ACTIVE ports are kept; local
//    rank r uses entry r % n, so the ranks of a host spread over devices.
//  * GASP_IB_GID_INDEX (ib_gid_index): >= 0 used as is; -1 = auto per node:
//    RoCE v2 with an IPv4-mapped GID, then RoCE v1 IPv4, then any non-zero
//    GID. The rdma_cm address is the IPv4 of the chosen GID.
//  * GASP_IB_TIMEOUT (ib_timeout): RDMA_OPTION_ID_ACK_TIMEOUT of each cm_id.
//  * GASP_IB_RETRY_COUNT (ib_retry_count): rdma_conn_param.retry_count
//    (rnr_retry_count is always 7, "infinite").
// The source address for connections to ranks on the same device (alt_ip)
// is derived: the IPv4 GID of another active device of the list, if any.
#ifndef GASP_TRANSPORT_VERBS_TRANSPORT_H_
#define GASP_TRANSPORT_VERBS_TRANSPORT_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "transport/transport.h"

namespace gasp {
namespace transport {

struct VerbsOptions {
  std::string net_devices;  // GASP_NET_DEVICES syntax (see above)
  int local_rank = 0;       // picks entry local_rank % n of the device list
  int gid_index = -1;       // GASP_IB_GID_INDEX: -1 = auto
  int ib_timeout = 14;      // GASP_IB_TIMEOUT: ACK timeout exponent
  int ib_retry_count = 7;   // GASP_IB_RETRY_COUNT
  size_t max_outstanding_ops = 1024;  // also the send queue depth
};

// The verbs options carried by TransportOptions.
VerbsOptions VerbsOptionsFrom(const TransportOptions& options);

// One entry of GASP_NET_DEVICES.
struct NetDeviceSpec {
  std::string device;
  int port = 1;
  bool port_given = false;  // "dev:port" rather than "dev"
  bool exclude = false;     // "^dev" / "^dev:port"
  friend bool operator==(const NetDeviceSpec& a, const NetDeviceSpec& b) {
    return a.device == b.device && a.port == b.port && a.port_given == b.port_given &&
           a.exclude == b.exclude;
  }
};

// Parses GASP_NET_DEVICES ("" = no entries). Errors (InvalidArgument) name
// GASP_NET_DEVICES and the bad entry.
absl::StatusOr<std::vector<NetDeviceSpec>> ParseNetDevices(const std::string& spec);

// A port of an RDMA device as found on this host.
struct RdmaPortInfo {
  std::string device;
  int port = 1;
  bool active = false;
  std::string state;  // "ACTIVE", "DOWN", ...
};

// The device choice: what local rank `local_rank` uses, and why.
struct NetDeviceChoice {
  std::string device;
  int port = 1;
  std::vector<std::pair<std::string, int>> candidates;  // active, after the filter
  std::string reason;
};

// Pure device selection over the ports found (in ibv_get_device_list
// order): applies `net_devices`, keeps ACTIVE ports, picks candidates
// [local_rank % n]. Errors list the ports found (name, port, state) and
// name GASP_NET_DEVICES: NotFound for an unknown device or port,
// Unavailable when nothing is left.
absl::StatusOr<NetDeviceChoice> ChooseNetDevice(const std::string& net_devices,
                                                const std::vector<RdmaPortInfo>& found,
                                                int local_rank);

// What a verbs transport with `verbs` would use on this host, and why.
struct VerbsDeviceSelection {
  std::string device;
  int port = 1;
  int gid_index = 0;
  std::string gid;        // "::ffff:10.0.0.1"
  std::string gid_type;   // "RoCE v2", "RoCE v1", "IB"
  std::string ipv4;       // rdma_cm address (from the GID)
  std::string alt_ipv4;   // source for peers on the same address ("" = none)
  int active_mtu = 0;     // bytes
  std::string reason;     // why this device and GID
};
// Resolves the device, port and GID as CreateVerbsTransport does (same
// errors), without creating anything.
absl::StatusOr<VerbsDeviceSelection> SelectVerbsDevice(const VerbsOptions& verbs);

// True when some RDMA device has an active port that `net_devices` allows;
// otherwise `reason` says why not (e.g. "no RDMA device (ibv_get_device_list:
// Function not implemented)").
bool VerbsDeviceAvailable(const std::string& net_devices, std::string* reason);
inline bool VerbsDeviceAvailable(std::string* reason) { return VerbsDeviceAvailable("", reason); }

// Human-readable listing of every RDMA device: name, node GUID, and per
// port its state, link layer, active MTU and the non-zero GID entries with
// their type (RoCE v1 / RoCE v2 / IB) and IPv4 when mapped. "no RDMA
// devices (ibv_get_device_list: ...)" when there are none. (gasp_info -d)
std::string DescribeRdmaDevices();

// Creates a verbs transport. Errors list the devices found and what to set.
absl::StatusOr<std::unique_ptr<Transport>> CreateVerbsTransport(const TransportOptions& options,
                                                                const VerbsOptions& verbs);

// --- Test hooks (conformance tests only; never used by the library). -------
// Each returns InvalidArgument when `transport` is not a verbs transport.

// Simulates a killed process: stops the progress thread and destroys every
// QP and cm_id (the listener too) without a goodbye or rdma_disconnect;
// peers get a CM disconnect and see the rank lost. Local outstanding ops
// complete with kFlushed; the object stays valid (later ops are flushed).
absl::Status VerbsCrashForTesting(Transport* transport);

// Pauses (true) / resumes (false) the rank like a hung process: parks the
// progress thread (no completion or message is processed) and, since a
// NIC serves one-sided ops without the CPU, moves the QPs that serve the
// peers' one-sided ops to RESET (requests are dropped, the requesters
// retransmit), restoring them with their PSNs on resume. A pause longer
// than the peers' retry budget (GASP_IB_TIMEOUT, GASP_IB_RETRY_COUNT)
// makes them declare this rank unreachable.
absl::Status VerbsPauseForTesting(Transport* transport, bool paused);

}  // namespace transport
}  // namespace gasp

#endif  // GASP_TRANSPORT_VERBS_TRANSPORT_H_
