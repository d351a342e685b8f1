// Picks a transport backend by name (GASP_TRANSPORT).
#ifndef GASP_TRANSPORT_FACTORY_H_
#define GASP_TRANSPORT_FACTORY_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "transport/transport.h"

namespace gasp {
namespace transport {

// Creates the backend called `name`:
//   "auto"  verbs when an RDMA device with an active port passes the
//           GASP_NET_DEVICES filter (options.net_devices), else tcp; the
//           choice and the reason are logged at info;
//   "tcp"   the tcp backend;
//   "verbs" the RDMA backend (options net_devices, local_rank, ib_*; see
//           verbs_transport.h) when such a device exists; otherwise
//           Unavailable "GASP_TRANSPORT=verbs but no RDMA device
//           (ibv_get_device_list: ...); use GASP_TRANSPORT=tcp".
//   "shm"   the shared-memory backend for jobs whose ranks all run on this
//           host (shm_transport.h); Connect refuses blobs of ranks on
//           another host with a hint to use tcp or auto.
// Any other name: InvalidArgument listing the
// available ones. Creation errors of the backend itself (e.g. GASP_TCP_PORT
// in use) are returned as they are.
absl::StatusOr<std::unique_ptr<Transport>> CreateTransport(const std::string& name,
                                                           const TransportOptions& options);

// The IPv4 address (dotted) this host advertises to peers when
// GASP_TCP_ADDR is empty: its first non-loopback interface that is up, else
// 127.0.0.1. Listeners bind it rather than every interface.
std::string DefaultHostAddress();

// Backend names CreateTransport can create here, besides "auto" ("verbs"
// only when an RDMA device with an active port exists).
std::vector<std::string> AvailableTransports();

}  // namespace transport
}  // namespace gasp

#endif  // GASP_TRANSPORT_FACTORY_H_
