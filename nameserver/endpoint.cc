#include "nameserver/endpoint.h"

#include <arpa/inet.h>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace gasp {
namespace nameserver {
namespace {

// RFC 1123 host name: labels of letters, digits and '-', separated by dots.
bool IsHostName(absl::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  size_t label = 0;
  for (char c : host) {
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
      continue;
    }
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return false;
    if (++label > 63) return false;
  }
  return label > 0;
}

}  // namespace

absl::StatusOr<HostPort> ParseHostPort(absl::string_view text, absl::string_view what,
                                       bool allow_port_zero) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " '", text, "': ", why, " (expected host:port, 1.2.3.4:port or [v6addr]:port)"));
  };
  HostPort hp;
  absl::string_view port_text;
  if (!text.empty() && text[0] == '[') {
    size_t close = text.find(']');
    if (close == absl::string_view::npos) return bad("no ']' after the IPv6 address");
    hp.host = std::string(text.substr(1, close - 1));
    if (text.substr(close + 1, 1) != ":") return bad("no ':port' after ']'");
    port_text = text.substr(close + 2);
    in6_addr a6;
    if (inet_pton(AF_INET6, hp.host.c_str(), &a6) != 1) return bad("not an IPv6 address");
  } else {
    size_t colon = text.rfind(':');
    if (colon == absl::string_view::npos) return bad("no port");
    hp.host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
    if (hp.host.find(':') != std::string::npos) return bad("put an IPv6 address in brackets");
    if (!IsHostName(hp.host)) return bad("not a host name or IPv4 address");
  }
  int port;
  if (port_text.empty() || !absl::SimpleAtoi(port_text, &port)) return bad("the port is not a number");
  if (port < (allow_port_zero ? 0 : 1) || port > 65535) {
    return bad(allow_port_zero ? "the port must be 0..65535" : "the port must be 1..65535");
  }
  hp.port = port;
  return hp;
}

bool IsLoopbackHost(absl::string_view host) {
  if (absl::AsciiStrToLower(host) == "localhost") return true;
  std::string h(host);
  in_addr a4;
  if (inet_pton(AF_INET, h.c_str(), &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
  in6_addr a6;
  if (inet_pton(AF_INET6, h.c_str(), &a6) == 1) return IN6_IS_ADDR_LOOPBACK(&a6);
  return false;
}

}  // namespace nameserver
}  // namespace gasp
