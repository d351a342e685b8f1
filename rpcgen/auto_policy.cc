#include "rpcgen/auto_policy.h"

#include <algorithm>

namespace gasp {
namespace rpc {
namespace {

double Ewma(double old, double now) { return (1 - AutoPolicy::kAlpha) * old + AutoPolicy::kAlpha * now; }

double MissFraction(const CallFeatures& f) {
  if (f.ref_pages == 0) return 1.0;  // nothing known: assume the worst case
  return static_cast<double>(f.missing_pages) / static_cast<double>(f.ref_pages);
}

}  // namespace

AutoPolicy::AutoPolicy(const CostPriors& priors) : c_(priors) {}

double AutoPolicy::ExpectedFaults(const CallFeatures& f) const {
  return c_.touched_pages * MissFraction(f);
}

double AutoPolicy::PredictDataUs(const CallFeatures& f) const {
  std::lock_guard<std::mutex> lock(mu_);
  return c_.data_base_us + c_.fetch_us * ExpectedFaults(f);
}

double AutoPolicy::PredictFunctionUs(const CallFeatures& f) const {
  std::lock_guard<std::mutex> lock(mu_);
  return c_.function_base_us + c_.bundle_us * static_cast<double>(f.bundle_pages);
}

bool AutoPolicy::ChooseData(const CallFeatures& f) {
  const double d = PredictDataUs(f);
  const double fn = PredictFunctionUs(f);
  std::lock_guard<std::mutex> lock(mu_);
  const bool data = d <= fn;
  return (++calls_ % kExplorePeriod == 0) ? !data : data;
}

void AutoPolicy::RecordData(const CallFeatures& f, uint64_t faults, absl::Duration took) {
  const double us = absl::ToDoubleMicroseconds(took);
  std::lock_guard<std::mutex> lock(mu_);
  const double miss = MissFraction(f);
  if (miss >= 0.05) c_.touched_pages = Ewma(c_.touched_pages, faults / miss);
  if (faults == 0) {
    c_.data_base_us = Ewma(c_.data_base_us, us);
  } else {
    const double per = (us - c_.data_base_us) / static_cast<double>(faults);
    c_.fetch_us = Ewma(c_.fetch_us, std::max(per, 0.1));
  }
}

void AutoPolicy::RecordFunction(const CallFeatures& f, absl::Duration took) {
  const double us = absl::ToDoubleMicroseconds(took);
  std::lock_guard<std::mutex> lock(mu_);
  if (f.bundle_pages == 0) {
    c_.function_base_us = Ewma(c_.function_base_us, us);
  } else {
    const double per = (us - c_.function_base_us) / static_cast<double>(f.bundle_pages);
    c_.bundle_us = Ewma(c_.bundle_us, std::max(per, 0.01));
  }
}

}  // namespace rpc
}  // namespace gasp
