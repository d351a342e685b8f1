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
//   "auto"  the best backend in this build (tcp in this release); the choice
//           and the reason are logged at info level;
//   "tcp"   the tcp backend.
// "verbs" and "shm" are recognised but not in this build: Unimplemented,
// with a hint to set GASP_TRANSPORT=tcp. Any other name: InvalidArgument
// listing the available ones. Creation errors of the backend itself (e.g.
// GASP_TCP_PORT in use) are returned as they are.
absl::StatusOr<std::unique_ptr<Transport>> CreateTransport(const std::string& name,
                                                           const TransportOptions& options);

// Backend names CreateTransport accepts in this build, besides "auto".
std::vector<std::string> AvailableTransports();

}  // namespace transport
}  // namespace gasp

#endif  // GASP_TRANSPORT_FACTORY_H_
