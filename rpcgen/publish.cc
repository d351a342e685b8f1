// PublishService: the home rank's side of a service.
#include <string>

#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "base/status.h"
#include "protect/protection.h"
#include "rpcgen/host.h"
#include "rpcgen/ns.h"
#include "gasp/service.h"
#include "runtime/public_status.h"
#include "runtime/runtime_internal.h"

namespace gasp {
namespace rpc {
namespace {

namespace v1 = nameserver::v1;

v1::Method::Kind ToWire(Kind k) {
  switch (k) {
    case Kind::kDataShipping: return v1::Method::DATA_SHIPPING;
    case Kind::kFunctionShipping: return v1::Method::FUNCTION_SHIPPING;
    case Kind::kAuto: return v1::Method::AUTO;
  }
  return v1::Method::AUTO;
}

}  // namespace

namespace {

absl::Status PublishImpl(ImplFactory factory, uint64_t root, const PublishOptions& options) {
  if (factory == nullptr) return absl::InvalidArgumentError("PublishService: no factory");
  const int domain = options.domain.id();
  if (domain != 0) {
    // Function-shipped calls run on gRPC's threads: the whole process must
    // hold the domain (a trusted grant of the home rank).
    protect::Protection* p = internal::GetProtection();
    const protect::DomainId local = p->DomainAt(reinterpret_cast<void*>(root));
    if (!protect::Covers(p->ProcessRights(local), protect::Rights::kReadWrite)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "PublishService: rank ", Rank(), " does not hold domain ", domain,
          " read-write for all its threads; call gasp::CoGrant(domain, ", Rank(),
          ", Access::kReadWrite) (trusted) before publishing"));
    }
  }
  if (internal::GetCoherence()->HomeOf(root) < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "PublishService: root ", absl::Hex(root), " is not allocated global memory"));
  }
  std::unique_ptr<ServiceBase> impl = factory(root);
  const std::string name = impl->service_name();
  GASP_ASSIGN_OR_RETURN(nameserver::NameServerClient * ns, NameServer());
  GASP_ASSIGN_OR_RETURN(std::string endpoint, Host::Get().Endpoint());

  v1::RegisterRequest req;
  req.set_service(name);
  for (const MethodInfo& m : impl->methods()) {
    v1::Method* wm = req.add_methods();
    wm->set_name(m.name);
    wm->set_kind(ToWire(m.kind));
  }
  req.set_home_rank(Rank());
  req.set_endpoint(endpoint);
  req.set_job_id(internal::JobId());
  for (const std::string& p : options.trusted_principals) req.add_trusted_principals(p);
  // Data-shipping code: this executable, which has the implementation
  // linked in; a client checks the hash before running its own copy.
  std::string code_path = options.code_path;
  if (code_path.empty()) {
    GASP_ASSIGN_OR_RETURN(code_path, OwnExecutable());
  }
  GASP_ASSIGN_OR_RETURN(std::string sha, Sha256OfFile(code_path));
  v1::Code* code = req.add_code();
  code->set_machine_type(MachineType());
  code->set_path(code_path);
  code->set_sha256(sha);
  v1::Segment* seg = req.add_segments();
  seg->set_address(root);
  seg->set_length(1);  // the root object; the rest is reached through it
  seg->set_domain(static_cast<uint32_t>(domain));
  if (domain != 0) {
    // Trusted binders get this rank's read-write key of the root's segment.
    const uint64_t key = internal::OwnDomainKey(domain, root, true);
    if (key != 0) {
      v1::RemoteKey* k = req.add_keys();
      k->set_domain(static_cast<uint32_t>(domain));
      k->set_rank(Rank());
      k->set_rkey(key);
      k->set_rights(v1::RemoteKey::READ_WRITE);
    }
  }
  GASP_RETURN_IF_ERROR(Host::Get().Add(PublishedService{std::move(impl), root, options.domain}));
  absl::StatusOr<v1::RegisterReply> reg = ns->Register(req);
  if (!reg.ok()) return Annotate(reg.status(), absl::StrCat("registering ", name));
  GASP_LOG(Info) << "published " << name << " at " << endpoint << " (owner " << reg->owner()
                 << ")";
  // Best effort at Finalize: the endpoint dies with the job.
  internal::AtFinalize([ns, name] {
    absl::Status s = ns->Unregister(name);
    if (!s.ok()) {
      GASP_LOG(Info) << "unregistering " << name << ": " << s;
    }
  });
  return absl::OkStatus();
}

}  // namespace

Status PublishService(ImplFactory factory, uint64_t root, const PublishOptions& options) {
  return ToPublic(PublishImpl(factory, root, options));
}

}  // namespace rpc
}  // namespace gasp
