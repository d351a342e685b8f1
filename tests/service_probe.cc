// Services end to end under gasprun -np 3 (tests/services_test.sh):
// rank 0 publishes Probe (state in its own domain), rank 1 is a trusted
// client, rank 2 an untrusted one (granted read through gates only).
//
//   service_probe paths    which rank runs each call, per path
//   service_probe refs     call by reference: results written through a
//                          GlobalRef, pages bundled both ways, AUTO
//   service_probe ship     a structure shipped by reference again and
//                          again with random changes (pages changed, left
//                          alone, zeroed, rewritten; copies dropped or made
//                          stale at the receiver in between), both ways:
//                          every byte the receiver sees is checked against
//                          the sender's, and diffs, fallbacks and refused
//                          diffs must all have happened
//   service_probe bad      unknown service, GlobalRefs outside the range /
//                          unallocated / into a domain not granted, a
//                          truncated and a forged page bundle, malformed
//                          write notices: each refused with its code, and
//                          nothing ran or changed
//   service_probe nons     (GASP_NAMESERVER points at nothing) Bind fails
//                          with UNAVAILABLE within the deadline
//   service_probe tls      (mutual TLS: GASP_NS_CA/CERT/KEY set, and
//                          PROBE_ROGUE_CERT/KEY a certificate of another CA)
//                          function shipping works over TLS; raw calls with
//                          no client certificate, one of another CA, or a
//                          claimed principal that is not the certificate's
//                          are refused, as are a callee that is not the
//                          owner and a plaintext caller; none of them ran
//   service_probe notices  (3 ranks) write notices carried by calls: the
//                          caller's writes reach a third rank through a
//                          lock the callee frees, the callee's reach the
//                          caller's next acquire, and notices too many for
//                          a call go to the notice log
//   service_probe creds    (no TLS) hand-made calls without a job
//                          credential, with another job's, made for another
//                          rank, replayed: refused; the proper call runs
//   service_probe serve / outsider   two jobs on one name server: the
//                          outsider job's calls are refused, nothing ran
// The modes are in service_probe_calls.cc and service_probe_refusals.cc,
// what they share in service_probe_common.{h,cc}.
#include <cstdio>
#include <string>

#include "gasp/gasp.h"
#include "tests/probe_expect.h"
#include "tests/service_probe_common.h"

using gasp_service_probe::Msg;

int main(int argc, char** argv) {
  auto rt = gasp::Init(&argc, &argv);
  if (!rt.ok()) {
    std::fprintf(stderr, "gasp::Init: %s\n", Msg(rt.status()).c_str());
    return 1;
  }
  const std::string mode = argc > 1 ? argv[1] : "";
  int rc = 2;
  if (mode == "paths") rc = gasp_service_probe::Paths();
  if (mode == "refs") rc = gasp_service_probe::Refs();
  if (mode == "bad") rc = gasp_service_probe::Bad();
  if (mode == "ship") rc = gasp_service_probe::Ship();
  if (mode == "nons") rc = gasp_service_probe::NoNameServer();
  if (mode == "tls") rc = gasp_service_probe::Tls();
  if (mode == "creds") rc = gasp_service_probe::Creds();
  if (mode == "serve") rc = gasp_service_probe::Serve();
  if (mode == "outsider") rc = gasp_service_probe::Outsider();
  if (mode == "notices") rc = gasp_service_probe::Notices();
  if (rc == 2) {
    std::fprintf(stderr,
                 "usage: service_probe paths|refs|ship|bad|nons|tls|creds|serve|outsider|notices\n");
  }
  gasp::Barrier();
  const int fin = rt->Finalize();
  if (rc != 0 || gasp::tests::ProbeFailures() != 0 || fin != 0) return 1;
  std::printf("PASS %s\n", mode.c_str());
  return 0;
}
