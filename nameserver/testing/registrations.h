// A valid registration to start tests from. Test-only.
#ifndef GASP_NAMESERVER_TESTING_REGISTRATIONS_H_
#define GASP_NAMESERVER_TESTING_REGISTRATIONS_H_

#include <string>

#include "nameserver/nameserver.pb.h"

namespace gasp {
namespace nameserver {
namespace testing {

inline constexpr char kTestMachine[] = "x86_64-linux-gnu";
inline constexpr char kTestSha256[] =
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

// `name` with methods Solve (DATA_SHIPPING), Status (FUNCTION_SHIPPING)
// and Step (AUTO); home rank 3 of job "job-42"; endpoint 127.0.0.1:7001;
// `trusted` (if not empty) as the one trusted principal; code for
// kTestMachine; segments in domains 7 and 5; READ_WRITE keys of ranks 0 and
// 1 for domain 7 (rkeys 0xabc0, 0xabc1).
inline v1::RegisterRequest TestRegistration(const std::string& name,
                                            const std::string& trusted = "") {
  v1::RegisterRequest r;
  r.set_service(name);
  auto method = [&](const char* n, v1::Method::Kind k) {
    v1::Method* m = r.add_methods();
    m->set_name(n);
    m->set_kind(k);
  };
  method("Solve", v1::Method::DATA_SHIPPING);
  method("Status", v1::Method::FUNCTION_SHIPPING);
  method("Step", v1::Method::AUTO);
  r.set_home_rank(3);
  r.set_endpoint("127.0.0.1:7001");
  r.set_job_id("job-42");
  if (!trusted.empty()) r.add_trusted_principals(trusted);
  v1::Code* code = r.add_code();
  code->set_machine_type(kTestMachine);
  code->set_path("/opt/solver/libsolver.so");
  code->set_sha256(kTestSha256);
  v1::Segment* seg = r.add_segments();
  seg->set_address(0x200000000000);
  seg->set_length(1 << 20);
  seg->set_domain(7);
  seg = r.add_segments();
  seg->set_address(0x200000100000);
  seg->set_length(4096);
  seg->set_domain(5);
  for (int rank = 0; rank < 2; ++rank) {
    v1::RemoteKey* k = r.add_keys();
    k->set_domain(7);
    k->set_rank(rank);
    k->set_rkey(0xabc0 + rank);
    k->set_rights(v1::RemoteKey::READ_WRITE);
  }
  return r;
}

}  // namespace testing
}  // namespace nameserver
}  // namespace gasp

#endif  // GASP_NAMESERVER_TESTING_REGISTRATIONS_H_
