// ns_probe: what a rank does with the name server gasprun hands it, for
// the launcher tests (tools/gasprun_test.sh). Reads the settings the way
// the runtime does (GASP_NAMESERVER, GASP_NS_*, GASP_TIMEOUT), registers
// "probe/rank<R>", binds it, lists the services and unregisters, printing
//
//   ns_probe rank R: ADDRESS owner OWNER trusted T stub STUB services N
//
// Exit status 0 on success, 3 when there is no name server, 1 on errors.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "base/settings.h"
#include "base/status.h"
#include "nameserver/client.h"

namespace {

using namespace gasp::nameserver;  // NOLINT

absl::Status Probe(const std::string& rank) {
  GASP_ASSIGN_OR_RETURN(gasp::Config config, gasp::LoadConfigFromEnv());
  GASP_ASSIGN_OR_RETURN(ClientOptions options, ClientOptionsFromConfig(config));
  GASP_ASSIGN_OR_RETURN(std::unique_ptr<NameServerClient> ns, NameServerClient::Create(options));
  v1::RegisterRequest reg;
  reg.set_service(absl::StrCat("probe/rank", rank));
  v1::Method* m = reg.add_methods();
  m->set_name("Ping");
  m->set_kind(v1::Method::FUNCTION_SHIPPING);
  reg.set_endpoint("127.0.0.1:9");
  GASP_ASSIGN_OR_RETURN(v1::RegisterReply reply, ns->Register(reg));
  v1::BindRequest bind;
  bind.set_service(reg.service());
  bind.set_machine_type("x86_64-linux-gnu");
  GASP_ASSIGN_OR_RETURN(v1::BindReply b, ns->Bind(bind));
  GASP_ASSIGN_OR_RETURN(std::vector<v1::ServiceSummary> list, ns->List());
  GASP_RETURN_IF_ERROR(ns->Unregister(reg.service()));
  std::printf("ns_probe rank %s: %s owner %s trusted %d stub %s services %zu\n", rank.c_str(),
              ns->address().c_str(), reply.owner().c_str(), b.trusted() ? 1 : 0,
              v1::MethodBinding::Stub_Name(b.methods(0).stub()).c_str(), list.size());
  return absl::OkStatus();
}

}  // namespace

int main() {
  const char* rank = std::getenv("GASP_RANK");
  absl::Status st = Probe(rank == nullptr ? "0" : rank);
  if (st.ok()) return 0;
  std::fprintf(stderr, "ns_probe: %s\n", st.ToString().c_str());
  return absl::IsFailedPrecondition(st) ? 3 : 1;
}
