// The name server's table of services: registration with owners, binding,
// listing, change notification for Watch, and persistence to the state
// file. Independent of gRPC (principals arrive already authenticated).
//
// Thread-safe: every method may be called from any thread. Changes are
// serialized; Bind and List run concurrently with each other.
#ifndef GASP_NAMESERVER_REGISTRY_H_
#define GASP_NAMESERVER_REGISTRY_H_

#include <cstddef>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "nameserver/nameserver.pb.h"
#include "nameserver/state.pb.h"

namespace gasp {
namespace nameserver {

struct RegistryOptions {
  // State file (see state_file.h); empty keeps registrations in memory only.
  std::string state_path;
  // Register of a new service beyond this fails with ResourceExhausted.
  size_t max_services = 10000;
  // Concurrent Watch streams; more fail with ResourceExhausted.
  size_t max_watchers = 256;
  // Events queued for one watcher that does not read; beyond this the
  // watcher is dropped (it must watch again and resync).
  size_t max_watch_backlog = 10000;
};

class Registry;

// One Watch stream's view: the current set as REGISTERED events, SYNCED,
// then every change, in the order the changes were made. Owned by the
// stream's handler; must not outlive the Registry.
class Watcher {
 public:
  enum class Result {
    kEvent,     // *event holds the next event
    kTimeout,   // nothing before the deadline
    kClosed,    // the registry is shutting down: end the stream
    kOverflow,  // this watcher fell max_watch_backlog events behind
  };

  ~Watcher();
  Watcher(const Watcher&) = delete;
  Watcher& operator=(const Watcher&) = delete;

  // Waits until an event is queued, the registry closes or `deadline`
  // passes. Queued events are delivered before kClosed.
  Result Next(absl::Time deadline, v1::WatchEvent* event);

 private:
  friend class Registry;
  struct Queue {
    absl::Mutex mu;
    std::deque<v1::WatchEvent> events ABSL_GUARDED_BY(mu);
    bool closed ABSL_GUARDED_BY(mu) = false;
    bool overflow ABSL_GUARDED_BY(mu) = false;
  };
  Watcher(Registry* registry, std::shared_ptr<Queue> queue);

  Registry* registry_;
  std::shared_ptr<Queue> queue_;
};

class Registry {
 public:
  // Loads options.state_path when it exists, else creates it empty (so
  // that an unwritable path fails here). A file that exists but does not
  // decode is an error (DataLoss/FailedPrecondition naming the file):
  // registrations are never dropped silently.
  static absl::StatusOr<std::unique_ptr<Registry>> Open(const RegistryOptions& options);

  // REQUIRES: no Watcher of this registry is alive.
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Stores `request` owned by `principal`, replacing an earlier
  // registration of the same name by the same owner. The state file is
  // written before the change becomes visible; when writing fails nothing
  // changes and the error is Internal. Errors: InvalidArgument
  // (ValidateRegistration), Unauthenticated (empty principal),
  // PermissionDenied (owned by another principal), ResourceExhausted.
  absl::StatusOr<v1::RegisterReply> Register(absl::string_view principal,
                                             const v1::RegisterRequest& request);

  // The binding of `principal` to request.service() (record_views.h).
  // NotFound when no such service is registered.
  absl::StatusOr<v1::BindReply> Bind(absl::string_view principal,
                                     const v1::BindRequest& request) const;

  // Removes `service`. NotFound when unknown, PermissionDenied when
  // `principal` is not its owner, Internal when the state file cannot be
  // written (then nothing changes).
  absl::Status Unregister(absl::string_view principal, absl::string_view service);

  // Every service, sorted by name.
  v1::ListReply List() const;

  // Number of registered services.
  size_t size() const;

  // A new watcher, primed with the current set and SYNCED. Unavailable
  // after CloseWatchers(); ResourceExhausted beyond max_watchers.
  absl::StatusOr<std::unique_ptr<Watcher>> Watch();

  // Ends every watcher (their Next returns kClosed once drained) and
  // refuses new ones. For shutdown; idempotent.
  void CloseWatchers();

 private:
  friend class Watcher;
  explicit Registry(const RegistryOptions& options);

  // Writes the state with `name` set to `record` (nullptr: removed).
  absl::Status SaveWith(const std::string& name, const v1::ServiceRecord* record)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Publish(v1::WatchEvent::Kind kind, const v1::ServiceRecord& record)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Forget(const Watcher::Queue* queue);

  const RegistryOptions options_;
  mutable absl::Mutex mu_;
  std::map<std::string, v1::ServiceRecord> services_ ABSL_GUARDED_BY(mu_);
  std::vector<std::shared_ptr<Watcher::Queue>> watchers_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace nameserver
}  // namespace gasp

#endif  // GASP_NAMESERVER_REGISTRY_H_
