// The front door of an insecure gRPC server (the function-shipping server
// without mutual TLS). gRPC 1.51 keeps a connection that never speaks
// HTTP/2 open for as long as the peer likes, and has no cap per source:
// 20000 idle connections would hold 20000 of the rank's descriptors. So
// gasp accepts the connections itself and hands one to gRPC
// (grpc::AddInsecureChannelFromFd) only once its first bytes are the
// HTTP/2 client preface. Until then a connection is "pending":
//
//  * it is closed when the preface has not arrived within `deadline`, or
//    at once when its bytes differ from the preface; a partial preface
//    does not wake the gate again before the rest (SO_RCVLOWAT), so
//    trickling bytes cannot make it spin;
//  * at most `max_pending_per_source` pending connections per source
//    address and `max_pending` in all; more are refused at once;
//  * accepting goes through base/accept_guard.h, as for every gasp
//    listener: EMFILE sheds with a spare descriptor, nothing spins, each
//    cause is logged at most once per 10 s with a count.
//
// Connections gRPC has are then bounded by its own idle timeout
// (nameserver/server_limits.h); every call still needs the job's
// credential (rpcgen/call_credential.h).
#ifndef GASP_RPCGEN_PREFACE_GATE_H_
#define GASP_RPCGEN_PREFACE_GATE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/server.h"

namespace gasp {
namespace rpc {

struct PrefaceGateOptions {
  absl::Duration deadline = absl::Seconds(2);
  int max_pending_per_source = 32;
  int max_pending = 256;
};

// Counts since Start, for tests and stats.
struct PrefaceGateCounters {
  uint64_t handed = 0;   // connections given to gRPC
  uint64_t refused = 0;  // refused at the caps (EMFILE sheds are only logged)
  uint64_t dropped = 0;  // closed: no preface in time, or other bytes
  uint64_t pending = 0;  // waiting for their preface now
};

class PrefaceGate {
 public:
  // Listens on `host`:0 (IPv4) and feeds `server`, which must be started
  // and must outlive the gate. `name` prefixes log lines.
  static absl::StatusOr<std::unique_ptr<PrefaceGate>> Start(const std::string& name,
                                                            const std::string& host,
                                                            grpc::Server* server,
                                                            PrefaceGateOptions options = {});
  // Stops accepting and closes every pending connection (not the ones
  // gRPC has).
  ~PrefaceGate();
  PrefaceGate(const PrefaceGate&) = delete;
  PrefaceGate& operator=(const PrefaceGate&) = delete;

  int port() const { return port_; }
  PrefaceGateCounters counters() const;

 private:
  struct Impl;
  explicit PrefaceGate(std::unique_ptr<Impl> impl, int port);

  std::unique_ptr<Impl> impl_;
  int port_;
};

}  // namespace rpc
}  // namespace gasp

#endif  // GASP_RPCGEN_PREFACE_GATE_H_
