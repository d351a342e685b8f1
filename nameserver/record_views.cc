#include "nameserver/record_views.h"

#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace gasp {
namespace nameserver {
namespace {

using Stub = v1::MethodBinding;

const v1::Code* CodeFor(const v1::RegisterRequest& r, absl::string_view machine_type) {
  for (const v1::Code& c : r.code()) {
    if (c.machine_type() == machine_type) return &c;
  }
  return nullptr;
}

std::string MachineTypes(const v1::RegisterRequest& r) {
  if (r.code().empty()) return "none";
  std::vector<std::string> types;
  for (const v1::Code& c : r.code()) types.push_back(c.machine_type());
  return absl::StrJoin(types, ", ");
}

// The stub and its reason for one method (the rule in the header).
void ChooseStub(const v1::RegisterRequest& r, const v1::Method& m, bool trusted, bool has_code,
                bool in_home_process, absl::string_view machine_type, v1::MethodBinding* b) {
  if (m.kind() == v1::Method::FUNCTION_SHIPPING) {
    b->set_stub(Stub::FUNCTION_SHIPPING);
    b->set_reason("registered for function shipping");
    return;
  }
  if (!has_code) {
    b->set_stub(Stub::FUNCTION_SHIPPING);
    b->set_reason(absl::StrCat("no code for machine type '", machine_type,
                               "' (registered: ", MachineTypes(r),
                               "): calls are shipped to the endpoint"));
    return;
  }
  if (in_home_process) {
    b->set_stub(trusted ? Stub::TRUSTED_DIRECT : Stub::UNTRUSTED_GATED);
    b->set_reason(trusted ? "trusted caller in the home process: direct call"
                          : "untrusted caller in the home process: call through a gate");
    return;
  }
  if (!trusted) {
    b->set_stub(Stub::FUNCTION_SHIPPING);
    b->set_reason(
        "untrusted caller: running the code here needs the service's remote keys, which only "
        "trusted principals receive; calls are shipped to the endpoint");
    return;
  }
  if (m.kind() == v1::Method::AUTO) {
    b->set_stub(Stub::AUTO);
    b->set_reason("trusted caller, method registered AUTO: the stub picks per call");
  } else {
    b->set_stub(Stub::DATA_SHIPPING);
    b->set_reason(absl::StrCat("trusted caller with code for '", machine_type,
                               "': the code runs here"));
  }
}

}  // namespace

bool IsTrusted(const v1::ServiceRecord& record, absl::string_view principal) {
  if (principal.empty()) return false;
  if (record.owner() == principal) return true;
  for (const std::string& p : record.registration().trusted_principals()) {
    if (p == principal) return true;
  }
  return false;
}

v1::BindReply MakeBinding(const v1::ServiceRecord& record, absl::string_view principal,
                          const v1::BindRequest& request) {
  const v1::RegisterRequest& r = record.registration();
  const bool trusted = IsTrusted(record, principal);
  const v1::Code* code = CodeFor(r, request.machine_type());
  const bool in_home_process = !r.job_id().empty() && r.job_id() == request.job_id() &&
                               request.has_rank() && request.rank() == r.home_rank();
  v1::BindReply reply;
  reply.set_service(r.service());
  reply.set_principal(std::string(principal));
  reply.set_owner(record.owner());
  reply.set_trusted(trusted);
  reply.set_endpoint(r.endpoint());
  reply.set_home_rank(r.home_rank());
  reply.set_job_id(r.job_id());
  for (const v1::Method& m : r.methods()) {
    v1::MethodBinding* b = reply.add_methods();
    b->set_name(m.name());
    b->set_registered_kind(m.kind());
    ChooseStub(r, m, trusted, code != nullptr, in_home_process, request.machine_type(), b);
  }
  std::set<uint32_t> domains;
  for (const v1::Segment& s : r.segments()) {
    *reply.add_segments() = s;
    domains.insert(s.domain());
  }
  for (uint32_t d : domains) reply.add_domains(d);
  if (trusted) *reply.mutable_keys() = r.keys();
  if (code != nullptr) *reply.mutable_code() = *code;
  return reply;
}

v1::ServiceSummary MakeSummary(const v1::ServiceRecord& record) {
  const v1::RegisterRequest& r = record.registration();
  v1::ServiceSummary s;
  s.set_service(r.service());
  s.set_owner(record.owner());
  *s.mutable_methods() = r.methods();
  s.set_home_rank(r.home_rank());
  s.set_endpoint(r.endpoint());
  for (const v1::Code& c : r.code()) s.add_machine_types(c.machine_type());
  s.set_job_id(r.job_id());
  return s;
}

}  // namespace nameserver
}  // namespace gasp
