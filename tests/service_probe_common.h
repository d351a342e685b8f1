// Shared pieces of service_probe (tests/service_probe.cc lists the modes):
// the Probe service rank 0 publishes, the job's set-up, and helpers the
// modes use. The modes are in service_probe_calls.cc (calls that must
// work) and service_probe_refusals.cc (calls that must be refused).
#ifndef GASP_TESTS_SERVICE_PROBE_COMMON_H_
#define GASP_TESTS_SERVICE_PROBE_COMMON_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "gasp/gasp.h"
#include "rpcgen/shipping.grpc.pb.h"
#include "tests/service_probe.gasp.h"

namespace gasp_service_probe {

// A status's message, for EXPECT's format.
std::string Msg(const absl::Status& s);
std::string Msg(const gasp::Status& s);

// The Probe service's state at rank 0.
struct State {
  uint64_t calls;
};

// "ship": a buffer homed at rank 0, one region of kChurnPages per rank,
// that Churn changes and returns by reference (the same address on every
// rank: a collective allocation; Ship sets it).
inline constexpr uint64_t kChurnPages = 8;
extern uint8_t* g_churn;

// A small deterministic generator (the same stream wherever it runs).
struct Rng {
  uint64_t s;
  uint64_t Next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  uint64_t Below(uint64_t n) { return Next() % n; }
};

// One random change to `pages` pages at `buf`: a few bytes, a run, a whole
// page rewritten, or a page of zeros.
void ChangeSomething(uint8_t* buf, uint64_t pages, Rng* rng);

// What every mode starts from: the probe and secret domains, the state,
// and Probe published by rank 0 (collective).
struct Setup {
  gasp::Domain domain;
  gasp::Domain secret;
  State* state = nullptr;
  uint64_t* secret_words = nullptr;
};
Setup Start();

// Where the bytes differ: "" if nowhere, else the first offset and how many.
std::string Mismatch(const uint8_t* seen, const uint8_t* want, uint64_t n);

// A hand-made Shipping request for Probe.Fill of the page at `page` with
// `value`, from this rank (no page bundle yet).
gasp::rpc::CallRequest FillCall(uint64_t* page, uint64_t value);

// The modes; each returns 0 or 1 (its failures are also counted by EXPECT).
int Paths();
int Refs();
int Ship();
int Notices();
int Bad();
int NoNameServer();
int Tls();
int Creds();
int Serve();
int Outsider();

}  // namespace gasp_service_probe

#endif  // GASP_TESTS_SERVICE_PROBE_COMMON_H_
