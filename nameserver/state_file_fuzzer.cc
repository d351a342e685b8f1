// Fuzz target for the state file loader (nameserver/state_file.h): the
// bytes of a --state file, which may be damaged or hand-edited.
//
// Checks, besides "no crash, no sanitizer report":
//  * whatever DecodeState accepts passes ValidateRegistration record by
//    record, has owners and unique names;
//  * accepted states survive EncodeState -> DecodeState unchanged.
//
// libFuzzer: bazel build --config=fuzz //nameserver:state_file_fuzzer
// Test suite: //nameserver:state_file_fuzz_test (base/testing/fuzz_driver_main.cc).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>

#include "google/protobuf/stubs/logging.h"
#include "nameserver/state_file.h"
#include "nameserver/validate.h"

namespace {

using namespace gasp::nameserver;  // NOLINT

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "state_file_fuzzer: invariant violated: %s\n", what);
    std::abort();
  }
}

void Add(void (*add)(void*, const uint8_t*, size_t), void* ctx, const std::string& s) {
  add(ctx, reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

void Decode(absl::string_view in) {
  absl::StatusOr<v1::State> state = DecodeState(in);
  if (!state.ok()) {
    Check(!state.status().message().empty(), "errors say what is wrong");
    return;
  }
  std::set<std::string> names;
  for (const v1::ServiceRecord& rec : state->services()) {
    Check(ValidateRegistration(rec.registration()).ok(), "accepted records are valid");
    Check(!rec.owner().empty(), "accepted records have owners");
    Check(names.insert(rec.registration().service()).second, "accepted names are unique");
  }
  absl::StatusOr<v1::State> again = DecodeState(EncodeState(*state));
  Check(again.ok(), "re-encoded state decodes");
  Check(again->SerializeAsString() == state->SerializeAsString(), "state round trip");
}

}  // namespace

// Invalid UTF-8 in string fields fails the parse (as it should) and makes
// libprotobuf log a line each time: keep the output readable.
extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view in(reinterpret_cast<const char*>(data), size);
  Decode(in);             // a whole file
  Decode(FrameState(in));  // a payload behind a valid header: the parser and the checks
  return 0;
}

// Valid files, and their payloads alone (which the target also frames).
extern "C" void GaspFuzzSeeds(void (*add)(void* ctx, const uint8_t* data, size_t size), void* ctx) {
  Add(add, ctx, EncodeState(v1::State()));
  v1::State s;
  for (const char* name : {"a/One", "solver.v1/Jacobi"}) {
    v1::ServiceRecord* rec = s.add_services();
    v1::RegisterRequest* r = rec->mutable_registration();
    rec->set_owner("CN=solver,O=gasp");
    r->set_service(name);
    v1::Method* m = r->add_methods();
    m->set_name("Solve");
    m->set_kind(v1::Method::DATA_SHIPPING);
    r->set_home_rank(1);
    r->set_endpoint("127.0.0.1:7001");
    r->add_trusted_principals("CN=alice,O=gasp");
    v1::Code* c = r->add_code();
    c->set_machine_type("x86_64-linux-gnu");
    c->set_path("/opt/lib.so");
    c->set_sha256(std::string(64, 'a'));
    v1::Segment* g = r->add_segments();
    g->set_address(0x200000000000);
    g->set_length(4096);
    g->set_domain(2);
    v1::RemoteKey* k = r->add_keys();
    k->set_domain(2);
    k->set_rank(0);
    k->set_rkey(77);
    k->set_rights(v1::RemoteKey::READ);
    Add(add, ctx, EncodeState(s));
    Add(add, ctx, s.SerializeAsString());
  }
}
