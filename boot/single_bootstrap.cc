// GASP_BOOT=single (or no launcher): one rank, collectives are local.
#include <unistd.h>

#include <string>
#include <vector>

#include "base/log.h"
#include "boot/bootstrap_internal.h"

namespace gasp {
namespace boot {
namespace {

class SingleBootstrap : public Bootstrap {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  int local_rank() const override { return 0; }
  int local_size() const override { return 1; }
  std::string method() const override { return "single"; }

  absl::StatusOr<std::vector<std::string>> Allgather(absl::string_view mine,
                                                     absl::Time deadline) override {
    if (finalized_) return absl::FailedPreconditionError("Allgather after Finalize");
    return std::vector<std::string>{std::string(mine)};
  }

  absl::Status Barrier(absl::Time deadline) override {
    if (finalized_) return absl::FailedPreconditionError("Barrier after Finalize");
    return absl::OkStatus();
  }

  [[noreturn]] void Abort(int exit_code, absl::string_view message) override {
    GASP_LOG(Error) << "abort (exit code " << exit_code << "): " << message;
    _exit(exit_code);
  }

  std::string LocalAddressHint() const override { return ""; }

  // Nobody else can fail.
  void SetJobFailureHandler(JobFailureHandler handler) override {}

  absl::Status Finalize(absl::Time deadline) override {
    finalized_ = true;
    return absl::OkStatus();
  }

 private:
  bool finalized_ = false;
};

}  // namespace

std::unique_ptr<Bootstrap> CreateSingleBootstrap() { return std::make_unique<SingleBootstrap>(); }

}  // namespace boot
}  // namespace gasp
