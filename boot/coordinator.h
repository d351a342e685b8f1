// TCP rendezvous for jobs without PMIx: the coordinator (server) and the
// per-rank client. gasprun runs a Coordinator in-process; without gasprun,
// rank 0 runs one at GASP_COORDINATOR (boot/tcp_bootstrap.cc).
//
// Protocol (frames in boot/coordinator_wire.h): each rank connects and sends
// HELLO{protocol version, rank, size, pid, job id, host, GASP_TIMEOUT,
// proof}; the coordinator refuses (ERROR, then close) another protocol
// version, a missing or wrong proof of the job secret (when it knows the
// secret: gasprun's), another job size or job id, an out-of-range or
// duplicate rank, and any rank of a job that already failed. Collectives
// are rounds numbered by a per-rank sequence: ALLGATHER{seq, blob} from
// every rank -> ALLGATHER_RESULT with every blob, indexed by rank; BARRIER
// is an allgather of empty blobs.
// ABORT from a rank is broadcast to every other rank. FINALIZE is a clean
// leave. A connection that drops without FINALIZE (or a death reported by
// the launcher through NotifyRankDied) is broadcast as RANK_DIED to every
// remaining rank and fails the rounds that rank had not joined.
//
// Bounded waits: each ALLGATHER carries the time its sender still waits;
// the coordinator fails the round at the earliest such deadline with a
// message naming the missing ranks ("rank 1 of 2 never arrived at the
// coordinator 127.0.0.1:4567 within GASP_TIMEOUT=2s"). The client gives
// the coordinator a short grace after its own deadline to deliver that
// explanation, then fails on its own.
//
// Scale: a star; the coordinator sends size x blob bytes to each rank per
// allgather (one shared copy in memory). Meant for init-time exchanges.
#ifndef GASP_BOOT_COORDINATOR_H_
#define GASP_BOOT_COORDINATOR_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "boot/bootstrap.h"
#include "boot/coordinator_wire.h"

namespace gasp {
namespace boot {

struct CoordinatorOptions {
  // Interface to listen on: an IPv4 address or host name, or "0.0.0.0" for
  // all interfaces.
  std::string bind_host = "127.0.0.1";
  // 0 picks a free port (read it back with port()).
  int port = 0;
  // Address quoted in messages and returned by address(); default
  // "<bind_host>:<port>".
  std::string advertised_address;
  // The job secret (boot/job_secret.h) when the coordinator's owner drew it
  // (gasprun): HELLOs without its proof are refused, so that nobody but
  // the ranks gasprun started can take a rank's place. Empty: no check.
  std::string secret;
  // Number of ranks in the job (>= 1); HELLOs claiming another size are refused.
  int size = 0;
  // Job identity; "" adopts the job id of the first accepted HELLO.
  std::string job_id;
  // Who runs the coordinator, for messages: "gasprun (vm:1234)", "rank 0 (vm:1234)".
  std::string owner = "the coordinator";
  // A connection that has not sent HELLO within this is closed.
  absl::Duration hello_timeout = absl::Seconds(60);
  // When a rank's connection drops without FINALIZE, wait this long for the
  // launcher's NotifyRankDied (which knows the exit status) before
  // broadcasting a generic RANK_DIED. 0 broadcasts at once.
  absl::Duration death_report_delay = absl::ZeroDuration();
};

// The rendezvous server: one background thread running a poll() loop.
// Thread-safe; every public method may be called from any thread except
// the coordinator's own.
class Coordinator {
 public:
  // Binds, listens and starts the server thread. Errors name the address
  // and the cause (e.g. "Address already in use").
  static absl::StatusOr<std::unique_ptr<Coordinator>> Start(const CoordinatorOptions& options);

  // Stops the server (see Stop()).
  ~Coordinator();

  Coordinator(const Coordinator&) = delete;
  Coordinator& operator=(const Coordinator&) = delete;

  // "host:port" ranks should connect to (the advertised address).
  std::string address() const;
  // The bound TCP port.
  int port() const;

  // The launcher learned (e.g. from waitpid) that `rank` is gone. `reason`
  // is a full sentence naming it ("rank 2 (vm:1234) was killed by signal 9
  // (Killed)"). Broadcast as RANK_DIED unless the rank had finalized or
  // aborted, or its death was already reported. Also valid for a rank that
  // never connected. Non-blocking.
  void NotifyRankDied(int rank, const std::string& reason);

  // Broadcasts ABORT{origin_rank, exit_code, message} to every connected
  // rank but `origin_rank`, marks the job failed, and waits until the
  // frames are written or `deadline` passes. For an aborting process that
  // hosts the coordinator.
  void AbortJob(int origin_rank, int exit_code, const std::string& message, absl::Time deadline);

  // Returns when every rank has finalized, aborted or died. At `deadline`
  // returns DeadlineExceeded naming the ranks still running.
  absl::Status WaitAllLeft(absl::Time deadline);

  // First failure of the job (a death or an abort) as a sentence; "" while
  // none.
  std::string FailureReason() const;

  // Rank whose death or abort was the first failure; -1 while none (or when
  // the launcher aborted the job).
  int FailureRank() const;

  // Closes every connection and joins the server thread. Idempotent. Ranks
  // still connected see their connection drop.
  void Stop();

 private:
  struct Impl;
  explicit Coordinator(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

struct CoordinatorClientOptions {
  std::string coordinator;  // "host:port" (from GASP_COORDINATOR)
  int rank = -1;
  int size = 0;
  std::string job_id;
  std::string host;  // default: ShortHostName()
  int pid = 0;       // default: getpid()
  // GASP_TIMEOUT, quoted in messages (deadlines are passed per call).
  absl::Duration timeout = absl::Seconds(60);
  // Who is expected to listen at `coordinator`, for connection errors:
  // "gasprun" or "rank 0".
  std::string expected_owner = "rank 0";
  // The job secret from the launcher (gasprun), proving the HELLO; empty:
  // no proof is sent.
  std::string secret;
};

// One rank's connection to the coordinator. A monitor thread reads every
// frame; replies wake the caller, RANK_DIED / ABORT / a lost connection
// invoke the JobFailureHandler (default: DefaultJobFailureHandler()) on the
// monitor thread. Collective calls (Allgather, Barrier) must not run
// concurrently with each other; the other methods are thread-safe.
class CoordinatorClient {
 public:
  // Connects (retrying refused or unreachable connects with backoff until
  // `deadline`: the coordinator may start after this rank), sends HELLO and
  // waits for WELCOME. A refusal returns the coordinator's message (version,
  // size, job id, duplicate rank). A timeout names GASP_COORDINATOR, the
  // expected owner and GASP_TIMEOUT.
  static absl::StatusOr<std::unique_ptr<CoordinatorClient>> Connect(
      const CoordinatorClientOptions& options, absl::Time deadline);

  // Closes the connection without FINALIZE (the coordinator then reports
  // this rank as dead) unless Finalize() ran. Safe to call from the
  // failure handler.
  ~CoordinatorClient();

  CoordinatorClient(const CoordinatorClient&) = delete;
  CoordinatorClient& operator=(const CoordinatorClient&) = delete;

  // Returns every rank's blob, indexed by rank. Errors: the coordinator's
  // explanation (missing ranks at the deadline, a dead rank, an abort), or
  // this rank's own DeadlineExceeded when the coordinator stays silent for
  // a short grace after `deadline`.
  absl::StatusOr<std::vector<std::string>> Allgather(absl::string_view mine, absl::Time deadline);

  // Allgather of empty blobs.
  absl::Status Barrier(absl::Time deadline);

  // Sends ABORT (bounded by `deadline`); after it, a lost connection is not
  // reported as a failure. The caller then exits.
  absl::Status SendAbort(int exit_code, absl::string_view message, absl::Time deadline);

  // Clean leave: sends FINALIZE, waits for the acknowledgment until
  // `deadline`, stops the monitor thread. No collective afterwards.
  absl::Status Finalize(absl::Time deadline);

  // Replaces the failure handler (nullptr restores the default).
  void SetJobFailureHandler(JobFailureHandler handler);

  // IPv4 address of this end of the connection (getsockname).
  std::string LocalAddress() const;

  // "gasprun (vm:1234)" / "rank 0 (vm:1234)", from WELCOME.
  std::string owner() const;

 private:
  struct State;
  explicit CoordinatorClient(std::shared_ptr<State> state);
  // Allgather with the collective kind, for messages.
  absl::StatusOr<std::vector<std::string>> AllgatherKind(absl::string_view mine,
                                                         absl::Time deadline,
                                                         wire::CollectiveKind kind);
  std::shared_ptr<State> state_;
};

// Logs `why` as an error naming the failed rank and exits the process with
// _exit(1) (no destructors: other threads may be blocked in collectives).
void DefaultJobFailureHandler(int rank, const std::string& why);

}  // namespace boot
}  // namespace gasp

#endif  // GASP_BOOT_COORDINATOR_H_
