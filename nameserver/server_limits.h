// Limits every gasp gRPC server applies (the name server and each rank's
// function-shipping server), so that an outsider who can reach the port
// cannot hold the process's descriptors, threads or memory:
//
//  * a connection must finish the HTTP/2 handshake (TLS included) and send
//    its SETTINGS within kHandshakeTimeout, or gRPC closes it: idle and
//    garbage connections cost a descriptor for at most that long;
//  * a connection with no call for kMaxConnectionIdle is closed with GOAWAY
//    (gasp's own channels reconnect on their next call);
//  * at most kMaxStreamsPerConnection calls run per connection, and the
//    server's memory for buffers is capped by a resource quota (gRPC
//    refuses new work, and reclaims idle connections, above it).
//
// gRPC 1.51 (Debian 12) has no per-source connection cap; what remains is
// documented in docs/protection.md.
#ifndef GASP_NAMESERVER_SERVER_LIMITS_H_
#define GASP_NAMESERVER_SERVER_LIMITS_H_

#include <cstddef>

#include "absl/time/time.h"
#include "grpcpp/server_builder.h"

namespace gasp {
namespace ns {

inline constexpr absl::Duration kHandshakeTimeout = absl::Seconds(2);
inline constexpr absl::Duration kMaxConnectionIdle = absl::Minutes(5);
inline constexpr int kMaxStreamsPerConnection = 256;

struct ServerLimits {
  // Bytes gRPC may hold for this server's buffers (resource quota).
  size_t memory_bytes = size_t{1} << 30;
  // Threads of a synchronous server (resource quota); 0: no cap. The
  // function-shipping server leaves it uncapped: a handler may wait for a
  // lock or make a nested call, and a cap below the number of concurrent
  // callers would refuse honest calls of a large job.
  int max_threads = 0;
};

// Adds the arguments above to `builder` (before BuildAndStart).
void ApplyServerLimits(grpc::ServerBuilder& builder, const ServerLimits& limits = {});

}  // namespace ns
}  // namespace gasp

#endif  // GASP_NAMESERVER_SERVER_LIMITS_H_
