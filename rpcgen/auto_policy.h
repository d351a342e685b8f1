// The AUTO invocation kind: per call, data shipping or function shipping,
// whichever a measured cost model predicts to be cheaper.
//
//   data shipping      T_d = base_d + fetch * expected_faults
//   function shipping  T_f = base_f + per_page * bundled_pages
//
// expected_faults = touched * (missing / ref_pages): how many pages a call
// touches (learned from the faults of past data-shipped calls, scaled by the
// miss fraction they ran with) times the fraction of the argument pages
// that are not resident here now. Every term is an exponentially weighted
// average of measured calls; one call in kExplorePeriod takes the other
// path so that neither model goes stale. Thread-safe.
#ifndef GASP_RPCGEN_AUTO_POLICY_H_
#define GASP_RPCGEN_AUTO_POLICY_H_

#include <cstdint>
#include <mutex>

#include "absl/time/time.h"

namespace gasp {
namespace rpc {

// What the stub knows about a call before making it.
struct CallFeatures {
  uint64_t ref_pages = 0;      // pages covered by the request's GlobalRefs
  uint64_t missing_pages = 0;  // of those, not resident here
  uint64_t bundle_pages = 0;   // pages function shipping would bundle
};

// Starting points, replaced by measurements after a few calls.
struct CostPriors {
  double data_base_us = 2;      // a data-shipped call with everything resident
  double fetch_us = 30;         // one page fault + fetch
  double touched_pages = 8;     // pages a call touches
  double function_base_us = 150;  // an RPC with nothing bundled
  double bundle_us = 5;         // per bundled page
};

class AutoPolicy {
 public:
  static constexpr int kExplorePeriod = 64;
  static constexpr double kAlpha = 0.2;  // weight of the newest measurement

  explicit AutoPolicy(const CostPriors& priors = {});

  // True: data shipping; false: function shipping.
  bool ChooseData(const CallFeatures& f);

  // Measurements of finished calls.
  void RecordData(const CallFeatures& f, uint64_t faults, absl::Duration took);
  void RecordFunction(const CallFeatures& f, absl::Duration took);

  // Predictions (microseconds), for tests and benchmark tables.
  double PredictDataUs(const CallFeatures& f) const;
  double PredictFunctionUs(const CallFeatures& f) const;

 private:
  double ExpectedFaults(const CallFeatures& f) const;  // REQUIRES: mu_

  mutable std::mutex mu_;
  CostPriors c_;
  uint64_t calls_ = 0;
};

}  // namespace rpc
}  // namespace gasp

#endif  // GASP_RPCGEN_AUTO_POLICY_H_
