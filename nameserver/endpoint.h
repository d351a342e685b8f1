// host:port addresses of the name server and of registered services.
//
// The forms accepted are the ones gRPC's "dns:" and "ipv4:/ipv6:" resolvers
// take without a scheme: "host:port", "1.2.3.4:port", "[v6addr]:port".
#ifndef GASP_NAMESERVER_ENDPOINT_H_
#define GASP_NAMESERVER_ENDPOINT_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace gasp {
namespace nameserver {

struct HostPort {
  std::string host;  // without the brackets of an IPv6 address
  int port = 0;
};

// Splits "host:port". The host is a DNS name, an IPv4 address or a
// bracketed IPv6 address; the port is 0..65535 when `allow_port_zero`
// (listening: pick a free port), else 1..65535. InvalidArgument names
// `what` (e.g. "--listen") and the expected form.
absl::StatusOr<HostPort> ParseHostPort(absl::string_view text, absl::string_view what,
                                       bool allow_port_zero);

// True for "localhost", 127.0.0.0/8 and ::1: the addresses only processes
// of this host can reach. Does not resolve names (a name that resolves to a
// loopback address is still refused: insecure mode must not depend on DNS).
bool IsLoopbackHost(absl::string_view host);

}  // namespace nameserver
}  // namespace gasp

#endif  // GASP_NAMESERVER_ENDPOINT_H_
