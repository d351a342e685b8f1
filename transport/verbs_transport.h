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
//    rxe device), the source is VerbsOptions::alt_ip if set, so traffic
//    still crosses the wire between two devices.
//  * Ops to self (peer == rank) are executed locally with memcpy / __atomic
//    after the same rkey / bounds / rights checks a NIC would make: rxe's
//    self-loopback path hangs on multi-packet messages, and the CPU path is
//    faster anyway. Self atomics, however, go through the device over a
//    QP to this rank's own listener (source alt_ip when set), so they stay
//    atomic with the peers' HCA atomics. Capabilities::cpu_atomics_coherent
//    is false: HCA (and rxe) atomics are not atomic with CPU atomics.
//  * Only one device is registered for remote access (the listener's);
//    a second device (alt_ip) only gets its own PD / CQ / bounce pool.
//  * Not yet: selective signaling (every WR is signaled; chains are posted
//    with one ibv_post_send), SRQ, inline sends, pause/crash test hooks.
//  * Local buffers are never registered on the fly: every READ/WRITE goes
//    through a registered bounce buffer (a pool of small slots, or a
//    per-op registered allocation for large ones), atomics return into a
//    registered result array. This also makes Abandon() safe: a late READ
//    lands in the bounce buffer and is dropped.
//  * Messages: tag + length header in the first chunk, payload chunked to
//    the receive buffer size, per-QP posted receive pool, RC keeps order.
//
// Settings: GASP_VERBS_DEVICE (e.g. "rxe0", "" = first with an active port),
// GASP_VERBS_PORT (1), GASP_VERBS_GID_INDEX (-1 = auto), GASP_VERBS_IP
// (address for rdma_cm; "" = the IPv4 address of the device's netdev).
#ifndef GASP_TRANSPORT_VERBS_TRANSPORT_H_
#define GASP_TRANSPORT_VERBS_TRANSPORT_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "transport/transport.h"

namespace gasp {
namespace transport {

struct VerbsOptions {
  std::string device;   // "" = first device with an active port
  int port = 1;
  int gid_index = -1;   // -1 = auto: first RoCE v2 IPv4-mapped GID
  std::string local_ip; // IPv4 for rdma_cm ("" = derived from the GID)
  // Source IPv4 used for connections to peers that advertise local_ip too
  // (several ranks on one device; soft-RoCE cannot loop back reliably).
  std::string alt_ip;
  size_t max_outstanding_ops = 1024;  // also the send queue depth
};

// Options from GASP_VERBS_* (see above).
VerbsOptions VerbsOptionsFromEnv();

// True when some RDMA device has an active port; otherwise `reason` says
// why not (e.g. "no RDMA device (ibv_get_device_list: Function not
// implemented)").
bool VerbsDeviceAvailable(std::string* reason);

// Creates a verbs transport. Errors list the devices found and what to set.
absl::StatusOr<std::unique_ptr<Transport>> CreateVerbsTransport(const TransportOptions& options,
                                                                const VerbsOptions& verbs);

}  // namespace transport
}  // namespace gasp

#endif  // GASP_TRANSPORT_VERBS_TRANSPORT_H_
