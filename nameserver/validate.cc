#include "nameserver/validate.h"

#include <set>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status.h"
#include "nameserver/endpoint.h"

namespace gasp {
namespace nameserver {
namespace {

absl::Status Invalid(absl::string_view service, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("service '", service, "': ", why));
}

absl::Status CheckText(absl::string_view service, absl::string_view field, absl::string_view text) {
  if (text.empty()) return Invalid(service, absl::StrCat(field, " is empty"));
  if (text.size() > kMaxTextBytes) {
    return Invalid(service, absl::StrFormat("%s is longer than %d bytes", field, kMaxTextBytes));
  }
  return absl::OkStatus();
}

bool IsSha256Hex(absl::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c)) && !(c >= 'a' && c <= 'f')) return false;
  }
  return true;
}

absl::Status ValidateMethods(const v1::RegisterRequest& r) {
  const std::string& s = r.service();
  if (r.methods().empty()) return Invalid(s, "no methods: register at least one");
  if (static_cast<size_t>(r.methods_size()) > kMaxMethods) {
    return Invalid(s, absl::StrFormat("%d methods, at most %d", r.methods_size(), kMaxMethods));
  }
  std::set<std::string> names;
  for (int i = 0; i < r.methods_size(); ++i) {
    const v1::Method& m = r.methods(i);
    GASP_RETURN_IF_ERROR(CheckText(s, absl::StrCat("methods[", i, "].name"), m.name()));
    if (!names.insert(m.name()).second) {
      return Invalid(s, absl::StrCat("method '", m.name(), "' is listed twice"));
    }
    if (m.kind() == v1::Method::KIND_UNSPECIFIED || !v1::Method::Kind_IsValid(m.kind())) {
      return Invalid(s, absl::StrCat("method '", m.name(),
                                     "' has no kind (DATA_SHIPPING, FUNCTION_SHIPPING or AUTO)"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateCode(const v1::RegisterRequest& r) {
  const std::string& s = r.service();
  if (static_cast<size_t>(r.code_size()) > kMaxCodeEntries) {
    return Invalid(s, absl::StrFormat("%d code entries, at most %d", r.code_size(), kMaxCodeEntries));
  }
  std::set<std::string> types;
  for (int i = 0; i < r.code_size(); ++i) {
    const v1::Code& c = r.code(i);
    GASP_RETURN_IF_ERROR(CheckText(s, absl::StrCat("code[", i, "].machine_type"), c.machine_type()));
    if (!types.insert(c.machine_type()).second) {
      return Invalid(s, absl::StrCat("two code entries for machine type '", c.machine_type(), "'"));
    }
    GASP_RETURN_IF_ERROR(CheckText(s, absl::StrCat("code[", i, "].path"), c.path()));
    if (c.path()[0] != '/') {
      return Invalid(s, absl::StrCat("code for '", c.machine_type(), "': path '", c.path(),
                                     "' is not absolute"));
    }
    if (!IsSha256Hex(c.sha256())) {
      return Invalid(s, absl::StrCat("code for '", c.machine_type(),
                                     "': sha256 must be 64 lowercase hex digits, got '",
                                     c.sha256().substr(0, 80), "'"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateMemory(const v1::RegisterRequest& r) {
  const std::string& s = r.service();
  if (static_cast<size_t>(r.segments_size()) > kMaxSegments) {
    return Invalid(s, absl::StrFormat("%d segments, at most %d", r.segments_size(), kMaxSegments));
  }
  if (static_cast<size_t>(r.keys_size()) > kMaxKeys) {
    return Invalid(s, absl::StrFormat("%d keys, at most %d", r.keys_size(), kMaxKeys));
  }
  std::set<uint32_t> domains;
  for (int i = 0; i < r.segments_size(); ++i) {
    const v1::Segment& g = r.segments(i);
    if (g.length() == 0) return Invalid(s, absl::StrCat("segments[", i, "] has length 0"));
    if (g.address() + g.length() < g.address()) {
      return Invalid(s, absl::StrFormat("segments[%d] (%#x + %#x) wraps around the address space",
                                        i, g.address(), g.length()));
    }
    domains.insert(g.domain());
  }
  for (int i = 0; i < r.keys_size(); ++i) {
    const v1::RemoteKey& k = r.keys(i);
    if (k.rank() < 0) return Invalid(s, absl::StrCat("keys[", i, "] has rank ", k.rank()));
    if (k.rights() == v1::RemoteKey::RIGHTS_UNSPECIFIED || !v1::RemoteKey::Rights_IsValid(k.rights())) {
      return Invalid(s, absl::StrCat("keys[", i, "] has no rights (READ or READ_WRITE)"));
    }
    if (domains.count(k.domain()) == 0) {
      return Invalid(s, absl::StrCat("keys[", i, "] is for domain ", k.domain(),
                                     ", which no registered segment belongs to"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateServiceName(absl::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError("the service name is empty");
  if (name.size() > kMaxServiceNameBytes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "service name '%s...' is longer than %d bytes", name.substr(0, 40), kMaxServiceNameBytes));
  }
  for (char c : name) {
    if (absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-' ||
        c == '/') {
      continue;
    }
    return absl::InvalidArgumentError(absl::StrFormat(
        "service name '%s' contains '%s'; use letters, digits and _ . - /",
        absl::CHexEscape(name), absl::CHexEscape(absl::string_view(&c, 1))));
  }
  return absl::OkStatus();
}

absl::Status ValidateRegistration(const v1::RegisterRequest& r) {
  GASP_RETURN_IF_ERROR(ValidateServiceName(r.service()));
  GASP_RETURN_IF_ERROR(ValidateMethods(r));
  const std::string& s = r.service();
  if (r.home_rank() < 0) return Invalid(s, absl::StrCat("home_rank is ", r.home_rank()));
  absl::Status endpoint = ParseHostPort(r.endpoint(), "endpoint", /*allow_port_zero=*/false).status();
  if (!endpoint.ok()) return Invalid(s, endpoint.message());
  if (static_cast<size_t>(r.trusted_principals_size()) > kMaxPrincipals) {
    return Invalid(s, absl::StrFormat("%d trusted principals, at most %d",
                                      r.trusted_principals_size(), kMaxPrincipals));
  }
  for (int i = 0; i < r.trusted_principals_size(); ++i) {
    GASP_RETURN_IF_ERROR(
        CheckText(s, absl::StrCat("trusted_principals[", i, "]"), r.trusted_principals(i)));
  }
  if (r.job_id().size() > kMaxTextBytes) return Invalid(s, "job_id is too long");
  GASP_RETURN_IF_ERROR(ValidateCode(r));
  return ValidateMemory(r);
}

}  // namespace nameserver
}  // namespace gasp
