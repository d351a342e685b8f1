// absl::Status <-> grpc::Status. The code numbers are the same in both
// (both follow google.rpc.Code), so the code is kept exactly:
// Unauthenticated stays Unauthenticated, and so on.
#ifndef GASP_NAMESERVER_GRPC_STATUS_H_
#define GASP_NAMESERVER_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace gasp {
namespace nameserver {

// What a handler returns for `status`: same code, same message; OK stays OK.
grpc::Status ToGrpcStatus(const absl::Status& status);

// What a client reports for a call's `status`: same code and message (the
// details field, unused by gasp, is dropped).
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace nameserver
}  // namespace gasp

#endif  // GASP_NAMESERVER_GRPC_STATUS_H_
