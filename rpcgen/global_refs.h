// The by-reference arguments of a call: every gasp.GlobalRef inside a
// request or reply message (singular, repeated, nested, map values).
#ifndef GASP_RPCGEN_GLOBAL_REFS_H_
#define GASP_RPCGEN_GLOBAL_REFS_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "google/protobuf/message.h"

namespace gasp {
namespace rpc {

struct Ref {
  uint64_t address = 0;
  uint64_t length = 0;
};

// Appends every GlobalRef with a non-zero length found in `message`, in
// field order. InvalidArgument if a reference wraps around the address
// space or messages nest deeper than 64 levels.
absl::Status CollectGlobalRefs(const google::protobuf::Message& message, std::vector<Ref>* refs);

}  // namespace rpc
}  // namespace gasp

#endif  // GASP_RPCGEN_GLOBAL_REFS_H_
