// Binding: a client's view of a service, and the four ways a call goes.
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "base/log.h"
#include "base/stats.h"
#include "base/status.h"
#include "rpcgen/auto_policy.h"
#include "rpcgen/call_credential.h"
#include "rpcgen/call_notices.h"
#include "rpcgen/code.h"
#include "rpcgen/global_refs.h"
#include "rpcgen/host.h"
#include "rpcgen/ns.h"
#include "rpcgen/pages.h"
#include "gasp/service.h"
#include "rpcgen/shipping.grpc.pb.h"
#include "runtime/public_status.h"
#include "runtime/runtime_internal.h"

namespace gasp {
namespace rpc {
namespace {

namespace v1 = nameserver::v1;

// What a method may do in this binding.
struct MethodPlan {
  Path fixed = Path::kFunctionShipping;  // when !automatic
  bool automatic = false;                // AUTO: data or function per call
  std::string reason;
};

class BindingImpl final : public Binding {
 public:
  BindingImpl(const v1::BindReply& reply) : reply_(reply) {}

  absl::Status Init();

  Status Call(int index, const google::protobuf::Message& request,
              google::protobuf::Message* reply) override {
    return ToPublic(CallOnce(index, request, reply));
  }
  Path Choose(int index, const google::protobuf::Message& request) override;
  void ForcePath(Path path) override { forced_.store(static_cast<int>(path)); }
  void ClearForcedPath() override { forced_.store(-1); }
  CallStats stats() const override {
    CallStats s;
    for (int i = 0; i < 4; ++i) s.calls[i] = calls_[i].load();
    s.pages_bundled = pages_.load();
    return s;
  }
  const std::string& service() const override { return reply_.service(); }

 private:
  absl::Status CallOnce(int index, const google::protobuf::Message& request,
                        google::protobuf::Message* reply);
  Path ChooseWith(int index, const CallFeatures& f);
  CallFeatures Features(const std::vector<Ref>& refs) const;
  const MethodInfo* Method(int index) const;
  absl::Status Invoke(ServiceBase* impl, bool gated, const MethodInfo& m,
                      const google::protobuf::Message& request, google::protobuf::Message* reply);
  absl::Status Ship(const std::string& method, const std::vector<Ref>& refs,
                    const google::protobuf::Message& request, google::protobuf::Message* reply,
                    uint64_t* bundled);

  const v1::BindReply reply_;
  uint64_t root_ = 0;
  Domain domain_;
  // Same process as the home: the published implementation.
  ServiceBase* published_ = nullptr;
  // Data shipping: this process's own instance. gated_: calls into the
  // domain need the gate (the rank holds it untrusted); gate_ is opened
  // whenever the rank was granted the domain (the gated path uses it too).
  std::unique_ptr<ServiceBase> local_;
  bool gated_ = false;
  bool have_gate_ = false;
  Gate gate_;
  std::vector<MethodPlan> plans_;
  std::vector<std::unique_ptr<AutoPolicy>> policies_;
  std::mutex channel_mu_;
  std::unique_ptr<Shipping::Stub> stub_;
  std::atomic<int> forced_{-1};
  std::atomic<uint64_t> calls_[4] = {};
  std::atomic<uint64_t> pages_{0};
};

const MethodInfo* BindingImpl::Method(int index) const {
  ServiceBase* impl = published_ != nullptr ? published_ : local_.get();
  if (impl == nullptr) return nullptr;
  MethodTable ms = impl->methods();
  return index >= 0 && index < static_cast<int>(ms.size()) ? &ms[index] : nullptr;
}

absl::Status BindingImpl::Init() {
  if (reply_.segments_size() > 0) {
    root_ = reply_.segments(0).address();
    domain_ = Domain(static_cast<int>(reply_.segments(0).domain()));
  }
  const bool same_job = reply_.job_id() == internal::JobId();
  if (same_job && reply_.home_rank() == Rank()) {
    if (PublishedService* p = Host::Get().Find(reply_.service())) published_ = p->impl.get();
  }
  // Remote keys handed out with a trusted binding: install them and take
  // the domain (the server's domain becomes part of this client's).
  if (same_job && reply_.trusted() && domain_.id() != 0) {
    for (const v1::RemoteKey& k : reply_.keys()) {
      GASP_RETURN_IF_ERROR(internal::InstallBoundKey(static_cast<int>(k.domain()), root_,
                                                     k.rank(), k.rkey()));
    }
    GASP_RETURN_IF_ERROR(internal::BindGrant(domain_.id(), protect::Rights::kReadWrite));
  }
  // Data shipping needs this process to hold the domain: directly
  // (trusted) or through a gate (granted untrusted with CoGrant).
  const protect::Rights rank_rights = internal::GrantedTo(domain_.id(), Rank());
  const bool thread_access = AccessOf(domain_) == Access::kReadWrite;
  bool can_data = false;
  std::string why_not;
  if (!same_job) {
    why_not = "the home is in another job";
  } else if (!protect::Covers(rank_rights, protect::Rights::kRead)) {
    why_not = absl::StrCat("rank ", Rank(), " was not granted domain ", domain_.id());
  } else if (LoadRegisteredCode(reply_, &why_not).ok()) {
    local_ = FindImpl(reply_.service())(root_);
    can_data = true;
    if (!thread_access) {
      Result<Gate> g = OpenGate(domain_, Access::kRead);
      if (protect::Covers(rank_rights, protect::Rights::kReadWrite)) {
        g = OpenGate(domain_, Access::kReadWrite);
      }
      if (g.ok()) {
        gate_ = *g;
        gated_ = true;
        have_gate_ = true;
      } else {
        can_data = false;
        why_not = std::string(g.status().message());
      }
    }
  }
  // Plans in the order of the generated method table (the stubs' indices),
  // matched to the name server's answer by name; without a local table
  // (function shipping only) in the answer's order, which is the
  // registration's, which is the table's.
  std::vector<const v1::MethodBinding*> order;
  if (ServiceBase* table = published_ != nullptr ? published_ : local_.get()) {
    for (const MethodInfo& mi : table->methods()) {
      const v1::MethodBinding* found = nullptr;
      for (const v1::MethodBinding& mb : reply_.methods()) {
        if (mb.name() == mi.name) found = &mb;
      }
      if (found == nullptr) {
        return absl::FailedPreconditionError(absl::StrCat(
            reply_.service(), ": method ", mi.name,
            " is not in the registration (the server runs other code than this client)"));
      }
      order.push_back(found);
    }
  } else {
    for (const v1::MethodBinding& mb : reply_.methods()) order.push_back(&mb);
  }
  for (const v1::MethodBinding* mbp : order) {
    const v1::MethodBinding& mb = *mbp;
    MethodPlan plan;
    plan.reason = mb.reason();
    switch (mb.stub()) {
      case v1::MethodBinding::TRUSTED_DIRECT:
        plan.fixed = published_ != nullptr ? Path::kTrustedDirect : Path::kFunctionShipping;
        break;
      case v1::MethodBinding::UNTRUSTED_GATED:
        plan.fixed = published_ != nullptr ? Path::kUntrustedGated : Path::kFunctionShipping;
        break;
      case v1::MethodBinding::DATA_SHIPPING:
        plan.fixed = can_data ? Path::kDataShipping : Path::kFunctionShipping;
        if (!can_data) plan.reason = why_not;
        break;
      case v1::MethodBinding::AUTO:
        plan.automatic = can_data;
        if (!can_data) plan.reason = why_not;
        break;
      default:
        // The name server offers function shipping to callers it does not
        // trust; a rank granted the domain (untrusted) may still run the
        // code here through a gate, as the method's registered kind asks.
        plan.fixed = Path::kFunctionShipping;
        if (can_data && mb.registered_kind() == v1::Method::DATA_SHIPPING) {
          plan.fixed = Path::kDataShipping;
        } else if (can_data && mb.registered_kind() == v1::Method::AUTO) {
          plan.automatic = true;
        }
        break;
    }
    if (published_ != nullptr && plan.fixed == Path::kFunctionShipping && !plan.automatic) {
      plan.fixed = thread_access ? Path::kTrustedDirect : Path::kUntrustedGated;
    }
    plans_.push_back(plan);
    policies_.push_back(std::make_unique<AutoPolicy>());
  }
  if (!have_gate_ && domain_.id() != 0 && protect::Covers(rank_rights, protect::Rights::kRead)) {
    Result<Gate> g =
        OpenGate(domain_, protect::Covers(rank_rights, protect::Rights::kReadWrite)
                              ? Access::kReadWrite
                              : Access::kRead);
    if (g.ok()) {
      gate_ = *g;
      have_gate_ = true;
    }
  }
  if (published_ != nullptr && !thread_access && domain_.id() != 0) gated_ = have_gate_;
  return absl::OkStatus();
}

CallFeatures BindingImpl::Features(const std::vector<Ref>& refs) const {
  CallFeatures f;
  consistency::Coherence* coh = internal::GetCoherence();
  std::vector<uint64_t> home;
  for (const Ref& r : refs) {
    const uint64_t first = r.address >> gas::kPageShift;
    const uint64_t last = (r.address + r.length - 1) >> gas::kPageShift;
    f.ref_pages += last - first + 1;
    f.missing_pages += coh->MissingPages(r.address, r.length);
    home.clear();
    coh->HomePagesIn(r.address, r.length, &home);
    f.bundle_pages += home.size();
  }
  return f;
}

Path BindingImpl::ChooseWith(int index, const CallFeatures& f) {
  const int forced = forced_.load();
  if (forced >= 0) return static_cast<Path>(forced);
  const MethodPlan& plan = plans_[index];
  if (!plan.automatic) return plan.fixed;
  return policies_[index]->ChooseData(f) ? Path::kDataShipping : Path::kFunctionShipping;
}

Path BindingImpl::Choose(int index, const google::protobuf::Message& request) {
  if (index < 0 || index >= static_cast<int>(plans_.size())) return Path::kFunctionShipping;
  std::vector<Ref> refs;
  CollectGlobalRefs(request, &refs).IgnoreError();
  return ChooseWith(index, Features(refs));
}

absl::Status BindingImpl::Invoke(ServiceBase* impl, bool gated, const MethodInfo& m,
                                 const google::protobuf::Message& request,
                                 google::protobuf::Message* reply) {
  if (!gated || domain_.id() == 0) return ToAbsl(m.invoke(impl, request, reply));
  if (!have_gate_) {
    return absl::PermissionDeniedError(absl::StrCat(
        reply_.service(), ": the gated path needs this rank to be granted domain ", domain_.id()));
  }
  return ToAbsl(gate_.Call([&] { return m.invoke(impl, request, reply); }));
}

absl::Status BindingImpl::Ship(const std::string& method, const std::vector<Ref>& refs,
                               const google::protobuf::Message& request,
                               google::protobuf::Message* reply, uint64_t* bundled) {
  Shipping::Stub* stub;
  {
    std::lock_guard<std::mutex> lock(channel_mu_);
    if (stub_ == nullptr) {
      grpc::ChannelArguments args;
      args.SetMaxReceiveMessageSize(512 << 20);
      args.SetMaxSendMessageSize(512 << 20);
      // Calls carry pages: a large HTTP/2 window lets a bundle go out
      // without waiting for window updates.
      args.SetInt("grpc.http2.lookahead_bytes", 16 << 20);
      GASP_ASSIGN_OR_RETURN(const ShippingTls* tls, JobShippingTls());
      std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
      if (tls != nullptr) {
        if (reply_.owner().empty()) {
          return absl::FailedPreconditionError(absl::StrCat(
              reply_.service(), ": the name server did not say who registered it, so the "
              "callee cannot be checked (update gasp_nameserver)"));
        }
        creds = tls->ChannelCredentials(reply_.owner());
        const std::string name = ShippingTls::ServerNameFor(reply_.owner());
        if (!name.empty()) args.SetSslTargetNameOverride(name);
      }
      stub_ = Shipping::NewStub(grpc::CreateCustomChannel(reply_.endpoint(), creds, args));
    }
    stub = stub_.get();
  }
  // Release first: the callee must see everything this rank wrote. The
  // notices ride in the request (call_notices.h).
  CallRequest req;
  // Notices mean something only inside one job: a call to another job's
  // service publishes them instead.
  const bool same_job = reply_.job_id() == internal::JobId();
  CarriedNotices carried;
  if (same_job) {
    GASP_ASSIGN_OR_RETURN(carried, ReleaseForCall(reply_.home_rank()));
  } else {
    GASP_RETURN_IF_ERROR(internal::GetSync()->Release());
  }
  req.set_notices(carried.bytes);
  req.set_job_id(internal::JobId());
  req.set_service(reply_.service());
  req.set_method(method);
  if (!request.SerializeToString(req.mutable_request())) {
    return absl::InvalidArgumentError("the request does not serialize");
  }
  BundleCounts sent;
  *req.mutable_pages() = BundleHomePages(refs, reply_.home_rank(), &sent);
  *bundled = sent.full + sent.diffs;
  req.set_caller_rank(Rank());
  req.set_principal(reply_.principal());
  GASP_ASSIGN_OR_RETURN(const ShippingTls* tls, JobShippingTls());
  if (tls == nullptr || same_job) {
    // Membership of the job is proved by the job credential
    // (call_credential.h): without mutual TLS for every call; with it, for
    // calls inside the job, whose notices only the job's ranks may send.
    SignJobCall(reply_.home_rank(), &req);
  }
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + internal::GetConfig().timeout));
  CallReply rep;
  grpc::Status s = stub->Call(&ctx, req, &rep);
  StatAdd(Counter::kRpcsShipped);
  if (!s.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                        absl::StrCat(reply_.service(), ".", method, " shipped to rank ",
                                     reply_.home_rank(), " (", reply_.endpoint(),
                                     "): ", s.error_message()));
  }
  if (same_job) Delivered(reply_.home_rank(), carried);
  if (!reply->ParseFromString(rep.reply())) {
    return absl::DataLossError(absl::StrCat("the reply of ", reply_.service(), ".", method,
                                            " does not parse"));
  }
  // See what the callee wrote: through the request's references and in the
  // reply's, installing the pages it bundled.
  std::vector<Ref> all = refs;
  GASP_RETURN_IF_ERROR(CollectGlobalRefs(*reply, &all));
  absl::StatusOr<std::vector<consistency::Contribution>> notices =
      same_job ? DecodeNotices(rep.notices()) : std::vector<consistency::Contribution>();
  if (!notices.ok()) return Annotate(notices.status(), "the reply's write notices were rejected");
  absl::StatusOr<uint64_t> n = AcquireAndInstall(rep.pages(), all, reply_.home_rank());
  if (!n.ok()) return Annotate(n.status(), "the reply's page bundle was rejected");
  *bundled += *n;
  GASP_RETURN_IF_ERROR(ApplyNotices(reply_.home_rank(), *notices, all));
  return absl::OkStatus();
}

absl::Status BindingImpl::CallOnce(int index, const google::protobuf::Message& request,
                                   google::protobuf::Message* reply) {
  if (index < 0 || index >= static_cast<int>(plans_.size())) {
    return absl::InvalidArgumentError(absl::StrFormat("%s: no method %d", reply_.service(), index));
  }
  // No local method table (neither published here nor linked in) leaves
  // function shipping only, which needs just the method's name: the
  // binding's plans are then in the registration's order.
  const MethodInfo* m = Method(index);
  const std::string name = m != nullptr ? m->name : reply_.methods(index).name();
  std::vector<Ref> refs;
  GASP_RETURN_IF_ERROR(CollectGlobalRefs(request, &refs));
  for (const Ref& r : refs) {
    GASP_RETURN_IF_ERROR(internal::CheckGlobalRef(r.address, r.length, Rank(), false));
  }
  // The residency walk costs a look at every page of the references: only
  // AUTO methods need it.
  const bool automatic = plans_[index].automatic;
  const CallFeatures f = automatic ? Features(refs) : CallFeatures{};
  const Path path = ChooseWith(index, f);
  calls_[static_cast<int>(path)].fetch_add(1);
  const absl::Time t0 = absl::Now();
  switch (path) {
    case Path::kTrustedDirect:
    case Path::kUntrustedGated: {
      if (published_ == nullptr) {
        return absl::FailedPreconditionError(absl::StrCat(
            reply_.service(), ": ", PathName(path), " needs the service in this process"));
      }
      return Invoke(published_, path == Path::kUntrustedGated || gated_, *m, request, reply);
    }
    case Path::kDataShipping: {
      if (local_ == nullptr) {
        return absl::FailedPreconditionError(
            absl::StrCat(reply_.service(), ": data shipping is not possible here: ",
                         plans_[index].reason));
      }
      const uint64_t faults0 = StatGet(Counter::kReadFaults);
      absl::Status s = Invoke(local_.get(), gated_, *m, request, reply);
      StatAdd(Counter::kDataShipped);
      if (automatic) {
        policies_[index]->RecordData(f, StatGet(Counter::kReadFaults) - faults0, absl::Now() - t0);
      }
      return s;
    }
    case Path::kFunctionShipping: {
      uint64_t bundled = 0;
      absl::Status s = Ship(name, refs, request, reply, &bundled);
      pages_.fetch_add(bundled);
      if (s.ok() && automatic) policies_[index]->RecordFunction(f, absl::Now() - t0);
      return s;
    }
  }
  return absl::InternalError("unknown path");
}

}  // namespace

namespace {

absl::StatusOr<std::shared_ptr<Binding>> BindTo(const std::string& service) {
  GASP_ASSIGN_OR_RETURN(nameserver::NameServerClient * ns, NameServer());
  v1::BindRequest req;
  req.set_service(service);
  req.set_machine_type(MachineType());
  req.set_job_id(internal::JobId());
  req.set_rank(Rank());
  GASP_ASSIGN_OR_RETURN(v1::BindReply reply, ns->Bind(req));
  auto b = std::make_shared<BindingImpl>(reply);
  GASP_RETURN_IF_ERROR(Annotate(b->Init(), absl::StrCat("binding ", service)));
  return std::shared_ptr<Binding>(std::move(b));
}

}  // namespace

Result<std::shared_ptr<Binding>> Binding::Bind(const std::string& service) {
  return ToPublic(BindTo(service));
}

}  // namespace rpc
}  // namespace gasp
