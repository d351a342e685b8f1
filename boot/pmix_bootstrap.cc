// PMIx bootstrap (PMIX_NAMESPACE set: mpirun, srun --mpi=pmix). No MPI
// library involved: PMIx_Init, then Put / Commit / Fence / Get.
//
// Allgather round k: every rank puts its blob under "gasp.ag.<k>"
// (PMIX_GLOBAL), commits, fences with PMIX_COLLECT_DATA, then gets the key
// of every rank. The fence is non-blocking (PMIx_Fence_nb) so that the wait
// is bounded by our deadline even when the server ignores PMIX_TIMEOUT (a
// rank that died before the fence would otherwise block the others forever,
// e.g. under srun without -K).
#include <pmix.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "base/log.h"
#include "base/status.h"
#include "boot/bootstrap_internal.h"
#include "boot/coordinator.h"
#include "boot/deadline_wait.h"

namespace gasp {
namespace boot {
namespace {

// How long Abort waits for the launcher to kill the job.
constexpr absl::Duration kAbortTimeout = absl::Seconds(5);

// Every blob is sent with this prefix byte so that an empty blob is still a
// non-empty PMIx byte object.
constexpr char kBlobTag = 'G';

std::string PmixError(pmix_status_t rc) { return PMIx_Error_string(rc); }

// Integer value of any PMIx integer type.
bool ValueToInt(const pmix_value_t* v, int64_t* out) {
  switch (v->type) {
    case PMIX_UINT8:
      *out = v->data.uint8;
      return true;
    case PMIX_UINT16:
      *out = v->data.uint16;
      return true;
    case PMIX_UINT32:
      *out = v->data.uint32;
      return true;
    case PMIX_UINT64:
      *out = static_cast<int64_t>(v->data.uint64);
      return true;
    case PMIX_INT8:
      *out = v->data.int8;
      return true;
    case PMIX_INT16:
      *out = v->data.int16;
      return true;
    case PMIX_INT32:
      *out = v->data.int32;
      return true;
    case PMIX_INT64:
      *out = v->data.int64;
      return true;
    case PMIX_INT:
      *out = v->data.integer;
      return true;
    case PMIX_UINT:
      *out = v->data.uint;
      return true;
    case PMIX_SIZE:
      *out = static_cast<int64_t>(v->data.size);
      return true;
    case PMIX_PROC_RANK:
      *out = v->data.rank;
      return true;
    default:
      return false;
  }
}

// State of one non-blocking fence, shared between the waiting caller and
// PMIx's progress thread (which may call back after the caller gave up).
struct FenceState {
  std::mutex mu;
  std::condition_variable cv;
  bool done ABSL_GUARDED_BY(mu) = false;
  pmix_status_t status ABSL_GUARDED_BY(mu) = PMIX_SUCCESS;
  pmix_info_t* info = nullptr;  // must stay valid until the callback
  size_t ninfo = 0;
  ~FenceState() {
    if (info != nullptr) PMIX_INFO_FREE(info, ninfo);
  }
};

void FenceDone(pmix_status_t status, void* cbdata) {
  auto* holder = static_cast<std::shared_ptr<FenceState>*>(cbdata);
  {
    std::unique_lock<std::mutex> lock((*holder)->mu);
    (*holder)->done = true;
    (*holder)->status = status;
    (*holder)->cv.notify_all();
  }
  delete holder;
}

class PmixBootstrap;
// The one PMIx client of this process (PMIx event handlers have no user
// pointer that survives every PMIx version): set while a PmixBootstrap lives.
std::mutex g_instance_mu;
PmixBootstrap* g_instance ABSL_GUARDED_BY(g_instance_mu) = nullptr;

class PmixBootstrap : public Bootstrap {
 public:
  explicit PmixBootstrap(const Config& config) : config_(config) {}

  ~PmixBootstrap() override {
    {
      std::unique_lock<std::mutex> lock(g_instance_mu);
      if (g_instance == this) g_instance = nullptr;
    }
    if (initialized_ && !finalized_) {
      // Leaving without Finalize: PMIx_Finalize still releases the server
      // connection cleanly; the launcher decides what our exit means.
      PMIx_Finalize(nullptr, 0);
    }
  }

  absl::Status Init() {
    pmix_status_t rc = PMIx_Init(&me_, nullptr, 0);
    if (rc != PMIX_SUCCESS) {
      const char* ns = std::getenv("PMIX_NAMESPACE");
      return absl::UnavailableError(absl::StrFormat(
          "PMIx_Init failed: %s (PMIX_NAMESPACE=%s is set, but the PMIx server cannot be "
          "reached: start the job with mpirun or srun --mpi=pmix, or set GASP_BOOT=tcp with "
          "GASP_COORDINATOR)",
          PmixError(rc), ns == nullptr ? "" : ns));
    }
    initialized_ = true;
    rank_ = static_cast<int>(me_.rank);
    PMIX_PROC_CONSTRUCT(&all_);
    PMIX_LOAD_PROCID(&all_, me_.nspace, PMIX_RANK_WILDCARD);
    int64_t v;
    GASP_ASSIGN_OR_RETURN(v, GetInt(all_, PMIX_JOB_SIZE, "PMIX_JOB_SIZE"));
    size_ = static_cast<int>(v);
    if (size_ < 1 || rank_ < 0 || rank_ >= size_) {
      return absl::InternalError(absl::StrFormat(
          "PMIx reports rank %d of a job of %d ranks (namespace %s)", rank_, size_, me_.nspace));
    }
    absl::StatusOr<int64_t> lr = GetInt(me_, PMIX_LOCAL_RANK, "PMIX_LOCAL_RANK");
    absl::StatusOr<int64_t> ls = GetInt(all_, PMIX_LOCAL_SIZE, "PMIX_LOCAL_SIZE");
    if (lr.ok() && ls.ok() && *lr >= 0 && *lr < *ls && *ls <= size_) {
      local_rank_ = static_cast<int>(*lr);
      local_size_ = static_cast<int>(*ls);
    } else {
      // Rare (old servers): derive them from the host names.
      GASP_LOG(Info) << "PMIx gave no local rank/size; exchanging host names";
      char host[256] = {0};
      gethostname(host, sizeof(host) - 1);
      GASP_ASSIGN_OR_RETURN(std::vector<std::string> hosts,
                            Allgather(host, absl::Now() + config_.timeout));
      LocalRanksFromHosts(hosts, rank_, &local_rank_, &local_size_);
    }
    {
      std::unique_lock<std::mutex> lock(g_instance_mu);
      g_instance = this;
    }
    RegisterFailureEvents();
    return absl::OkStatus();
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return local_rank_; }
  int local_size() const override { return local_size_; }
  std::string method() const override { return "pmix"; }

  absl::StatusOr<std::vector<std::string>> Allgather(absl::string_view mine,
                                                     absl::Time deadline) override {
    if (finalized_) return absl::FailedPreconditionError("Allgather after Finalize");
    uint64_t seq = ++seq_;
    std::string key = absl::StrCat("gasp.ag.", seq);
    std::string tagged = absl::StrCat(absl::string_view(&kBlobTag, 1), mine);
    pmix_value_t value;
    PMIX_VALUE_CONSTRUCT(&value);
    value.type = PMIX_BYTE_OBJECT;
    value.data.bo.bytes = tagged.data();  // PMIx_Put copies it
    value.data.bo.size = tagged.size();
    pmix_status_t rc = PMIx_Put(PMIX_GLOBAL, key.c_str(), &value);
    if (rc != PMIX_SUCCESS) {
      return absl::InternalError(
          absl::StrFormat("allgather #%d: PMIx_Put(%s) failed: %s", seq, key, PmixError(rc)));
    }
    rc = PMIx_Commit();
    if (rc != PMIX_SUCCESS) {
      return absl::InternalError(
          absl::StrFormat("allgather #%d: PMIx_Commit failed: %s", seq, PmixError(rc)));
    }
    GASP_RETURN_IF_ERROR(Fence(true, deadline, absl::StrCat("allgather #", seq)));
    std::vector<std::string> out(size_);
    for (int r = 0; r < size_; ++r) {
      pmix_proc_t peer;
      PMIX_PROC_CONSTRUCT(&peer);
      PMIX_LOAD_PROCID(&peer, me_.nspace, static_cast<pmix_rank_t>(r));
      pmix_value_t* got = nullptr;
      rc = PMIx_Get(&peer, key.c_str(), nullptr, 0, &got);
      if (rc != PMIX_SUCCESS || got == nullptr) {
        return absl::InternalError(
            absl::StrFormat("allgather #%d: PMIx_Get of rank %d's '%s' failed after the fence: %s",
                            seq, r, key, PmixError(rc)));
      }
      bool ok = got->type == PMIX_BYTE_OBJECT && got->data.bo.size >= 1 &&
                got->data.bo.bytes[0] == kBlobTag;
      if (ok) out[r].assign(got->data.bo.bytes + 1, got->data.bo.size - 1);
      PMIX_VALUE_RELEASE(got);
      if (!ok) {
        return absl::InternalError(absl::StrFormat(
            "allgather #%d: rank %d's '%s' is not a gasp blob (another program in the same PMIx "
            "namespace?)",
            seq, r, key));
      }
    }
    return out;
  }

  absl::Status Barrier(absl::Time deadline) override {
    if (finalized_) return absl::FailedPreconditionError("Barrier after Finalize");
    uint64_t seq = ++seq_;
    return Fence(false, deadline, absl::StrCat("barrier #", seq));
  }

  [[noreturn]] void Abort(int exit_code, absl::string_view message) override {
    auto msg = std::make_shared<std::string>(message);
    GASP_LOG(Error) << "abort (exit code " << exit_code << "): " << *msg;
    {
      std::unique_lock<std::mutex> lock(mu_);
      leaving_ = true;
    }
    // Asks the launcher to kill the job (every rank exits non-zero).
    // PMIx_Abort blocks until the launcher acts, normally by killing this
    // process; bound the wait in case it never does.
    auto done = std::make_shared<FenceState>();
    std::thread([msg, exit_code, done] {
      PMIx_Abort(exit_code, msg->c_str(), nullptr, 0);
      std::unique_lock<std::mutex> lock(done->mu);
      done->done = true;
      done->cv.notify_all();
    }).detach();
    {
      std::unique_lock<std::mutex> lock(done->mu);
      absl::Time deadline = absl::Now() + std::min(config_.timeout, kAbortTimeout);
      WaitUntil(done->cv, lock, deadline, [&done] { return done->done; });
    }
    _exit(exit_code);
  }

  std::string LocalAddressHint() const override { return ""; }

  void SetJobFailureHandler(JobFailureHandler handler) override {
    std::unique_lock<std::mutex> lock(mu_);
    handler_ = std::move(handler);
  }

  absl::Status Finalize(absl::Time deadline) override {
    if (finalized_) return absl::FailedPreconditionError("Finalize called twice");
    {
      std::unique_lock<std::mutex> lock(mu_);
      leaving_ = true;
    }
    finalized_ = true;
    if (event_handler_registered_) {
      PMIx_Deregister_event_handler(event_handler_id_, nullptr, nullptr);
      event_handler_registered_ = false;
    }
    pmix_status_t rc = PMIx_Finalize(nullptr, 0);
    if (rc != PMIX_SUCCESS) {
      return absl::InternalError(absl::StrCat("PMIx_Finalize failed: ", PmixError(rc)));
    }
    return absl::OkStatus();
  }

  // PMIx event (progress thread): another rank failed or the server left.
  void OnFailureEvent(pmix_status_t status, const pmix_proc_t* source, pmix_info_t info[],
                      size_t ninfo) {
    int rank = -1;
    for (size_t i = 0; i < ninfo; ++i) {
      if (PMIX_CHECK_KEY(&info[i], PMIX_EVENT_AFFECTED_PROC) && info[i].value.type == PMIX_PROC &&
          info[i].value.data.proc != nullptr) {
        rank = static_cast<int>(info[i].value.data.proc->rank);
      }
    }
    if (rank < 0 && source != nullptr && source->rank < static_cast<pmix_rank_t>(size_)) {
      rank = static_cast<int>(source->rank);
    }
    std::string why =
        status == PMIX_ERR_LOST_CONNECTION
            ? std::string("lost the connection to the PMIx server (the launcher died)")
            : absl::StrFormat("the launcher reports %s for rank %d of namespace %s",
                              PmixError(status), rank, me_.nspace);
    JobFailureHandler h;
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (leaving_) return;
      h = handler_;
    }
    if (h) {
      h(rank, why);
    } else {
      DefaultJobFailureHandler(rank, why);
    }
  }

 private:
  absl::StatusOr<int64_t> GetInt(const pmix_proc_t& proc, const char* key, const char* name) {
    pmix_value_t* val = nullptr;
    pmix_status_t rc = PMIx_Get(&proc, key, nullptr, 0, &val);
    if (rc != PMIX_SUCCESS || val == nullptr) {
      return absl::NotFoundError(absl::StrFormat("PMIx_Get(%s) failed: %s", name, PmixError(rc)));
    }
    int64_t out = 0;
    bool ok = ValueToInt(val, &out);
    PMIX_VALUE_RELEASE(val);
    if (!ok) return absl::InternalError(absl::StrFormat("PMIx %s is not an integer", name));
    return out;
  }

  absl::Status FenceTimedOut(const std::string& what) const {
    return absl::DeadlineExceededError(absl::StrFormat(
        "%s: the PMIx fence of rank %d of %d did not complete within GASP_TIMEOUT=%s: some "
        "rank did not reach it (PMIx does not say which; look for a rank that failed or is "
        "stuck earlier in the other ranks' output)",
        what, rank_, size_, absl::FormatDuration(config_.timeout)));
  }

  absl::Status Fence(bool collect, absl::Time deadline, const std::string& what) {
    auto state = std::make_shared<FenceState>();
    // PMIx's own timeout a little after ours, so that our wait normally
    // ends first; either way the message is the same (FenceTimedOut).
    int64_t secs =
        absl::ToInt64Seconds(absl::Ceil(deadline - absl::Now(), absl::Seconds(1))) + 2;
    int timeout = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(secs, 7 * 24 * 3600)));
    state->ninfo = collect ? 2 : 1;
    PMIX_INFO_CREATE(state->info, state->ninfo);
    PMIX_INFO_LOAD(&state->info[0], PMIX_TIMEOUT, &timeout, PMIX_INT);
    if (collect) {
      bool yes = true;
      PMIX_INFO_LOAD(&state->info[1], PMIX_COLLECT_DATA, &yes, PMIX_BOOL);
    }
    auto* holder = new std::shared_ptr<FenceState>(state);
    pmix_status_t rc = PMIx_Fence_nb(&all_, 1, state->info, state->ninfo, &FenceDone, holder);
    if (rc != PMIX_SUCCESS) {
      delete holder;
      if (rc == PMIX_OPERATION_SUCCEEDED) return absl::OkStatus();
      return absl::InternalError(
          absl::StrFormat("%s: PMIx_Fence failed to start: %s", what, PmixError(rc)));
    }
    pmix_status_t status;
    {
      std::unique_lock<std::mutex> lock(state->mu);
      if (!WaitUntil(state->cv, lock, deadline, [&state] { return state->done; })) {
        return FenceTimedOut(what);
      }
      status = state->status;
    }
    if (status == PMIX_SUCCESS) return absl::OkStatus();
    if (status == PMIX_ERR_TIMEOUT) return FenceTimedOut(what);
    return absl::AbortedError(absl::StrFormat(
        "%s: the PMIx fence failed: %s (the launcher could not complete it: a rank of the job "
        "probably died; see the launcher's messages)",
        what, PmixError(status)));
  }

  static void EventTrampoline(size_t evhdlr_registration_id, pmix_status_t status,
                              const pmix_proc_t* source, pmix_info_t info[], size_t ninfo,
                              pmix_info_t results[], size_t nresults,
                              pmix_event_notification_cbfunc_fn_t cbfunc, void* cbdata) {
    // Let PMIx go on first: the handler may exit the process.
    if (cbfunc != nullptr) cbfunc(PMIX_EVENT_ACTION_COMPLETE, nullptr, 0, nullptr, nullptr, cbdata);
    PmixBootstrap* self;
    {
      std::unique_lock<std::mutex> lock(g_instance_mu);
      self = g_instance;
    }
    if (self != nullptr) self->OnFailureEvent(status, source, info, ninfo);
  }

  void RegisterFailureEvents() {
    // Abnormal ends only: a clean exit of another rank is not a failure.
    pmix_status_t codes[] = {PMIX_ERR_PROC_ABORTED_BY_SIG, PMIX_ERR_PROC_REQUESTED_ABORT,
                             PMIX_ERR_PROC_TERM_WO_SYNC,   PMIX_ERR_PROC_KILLED_BY_CMD,
                             PMIX_ERR_JOB_ABORTED,         PMIX_ERR_JOB_ABORTED_BY_SIG,
                             PMIX_ERR_JOB_TERM_WO_SYNC,    PMIX_ERR_LOST_CONNECTION};
    pmix_status_t rc = PMIx_Register_event_handler(codes, sizeof(codes) / sizeof(codes[0]), nullptr,
                                                   0, &EventTrampoline, nullptr, nullptr);
    if (rc < 0) {
      GASP_LOG(Info) << "PMIx event registration failed (" << PmixError(rc)
                     << "): rank failures are detected by collective timeouts only";
      return;
    }
    event_handler_id_ = static_cast<size_t>(rc);
    event_handler_registered_ = true;
  }

  Config config_;
  pmix_proc_t me_;
  pmix_proc_t all_;
  bool initialized_ = false;
  bool finalized_ = false;
  int rank_ = 0;
  int size_ = 1;
  int local_rank_ = 0;
  int local_size_ = 1;
  uint64_t seq_ = 0;
  size_t event_handler_id_ = 0;
  bool event_handler_registered_ = false;
  std::mutex mu_;
  JobFailureHandler handler_ ABSL_GUARDED_BY(mu_);
  bool leaving_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Bootstrap>> CreatePmixBootstrap(const Config& config) {
  if (std::getenv("PMIX_NAMESPACE") == nullptr) {
    return absl::FailedPreconditionError(
        "the PMIx bootstrap needs PMIX_NAMESPACE, which PMIx launchers set: start the job with "
        "mpirun or srun --mpi=pmix (or choose another GASP_BOOT)");
  }
  auto b = std::make_unique<PmixBootstrap>(config);
  GASP_RETURN_IF_ERROR(b->Init());
  return std::unique_ptr<Bootstrap>(std::move(b));
}

}  // namespace boot
}  // namespace gasp
