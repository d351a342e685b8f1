// absl::Status <-> grpc::Status. The code numbers are the same in both
// (both follow google.rpc.Code), so the code is kept exactly:
// Unauthenticated stays Unauthenticated, and so on.
#ifndef GASP_NAMESERVER_GRPC_STATUS_H_
#define GASP_NAMESERVER_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace gasp {
namespace nameserver {

grpc::Status ToGrpcStatus(const absl::Status& status);

absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace nameserver
}  // namespace gasp

#endif  // GASP_NAMESERVER_GRPC_STATUS_H_
