// The checks a registration passes before the name server stores it, both
// from Register and from the state file (a hand-edited or damaged file is
// held to the same rules).
#ifndef GASP_NAMESERVER_VALIDATE_H_
#define GASP_NAMESERVER_VALIDATE_H_

#include <cstddef>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "nameserver/nameserver.pb.h"

namespace gasp {
namespace nameserver {

// Bounds of one registration; generous, but they keep a state file and a
// Bind reply well under gRPC's 4 MiB message limit.
inline constexpr size_t kMaxServiceNameBytes = 200;
inline constexpr size_t kMaxMethods = 1024;
inline constexpr size_t kMaxPrincipals = 256;
inline constexpr size_t kMaxCodeEntries = 64;
inline constexpr size_t kMaxSegments = 4096;
inline constexpr size_t kMaxKeys = 16384;
inline constexpr size_t kMaxTextBytes = 1024;  // a method name, path, principal, ...

// OK when `name` is 1..kMaxServiceNameBytes characters of [A-Za-z0-9_.-/].
// InvalidArgument otherwise, naming the first offending character.
absl::Status ValidateServiceName(absl::string_view name);

// OK when `request` can be stored: valid service name; 1..kMaxMethods
// methods with non-empty unique names and a kind; home_rank >= 0; endpoint
// host:port; non-empty principals; at most one code entry per machine type,
// each with an absolute path and a 64-digit lowercase hex SHA-256; segments
// with length > 0 that do not wrap around; keys with rank >= 0, rights set
// and the domain of some segment. InvalidArgument says which field of which
// entry is wrong.
absl::Status ValidateRegistration(const v1::RegisterRequest& request);

}  // namespace nameserver
}  // namespace gasp

#endif  // GASP_NAMESERVER_VALIDATE_H_
