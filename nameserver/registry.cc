#include "nameserver/registry.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/log.h"
#include "base/status.h"
#include "nameserver/record_views.h"
#include "nameserver/state_file.h"
#include "nameserver/validate.h"

namespace gasp {
namespace nameserver {

// ------------------------------------------------------------ Watcher

Watcher::Watcher(Registry* registry, std::shared_ptr<Queue> queue)
    : registry_(registry), queue_(std::move(queue)) {}

Watcher::~Watcher() { registry_->Forget(queue_.get()); }

Watcher::Result Watcher::Next(absl::Time deadline, v1::WatchEvent* event) {
  Queue& q = *queue_;
  absl::MutexLock lock(&q.mu);
  auto ready = [&q]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(q.mu) {
    return !q.events.empty() || q.closed || q.overflow;
  };
  q.mu.AwaitWithDeadline(absl::Condition(&ready), deadline);
  // A watcher that fell behind must resync: delivering the rest would hide
  // the events that were dropped.
  if (q.overflow) return Result::kOverflow;
  if (!q.events.empty()) {
    *event = std::move(q.events.front());
    q.events.pop_front();
    return Result::kEvent;
  }
  return q.closed ? Result::kClosed : Result::kTimeout;
}

// ------------------------------------------------------------ Registry

Registry::Registry(const RegistryOptions& options) : options_(options) {}

Registry::~Registry() = default;

absl::StatusOr<std::unique_ptr<Registry>> Registry::Open(const RegistryOptions& options) {
  std::unique_ptr<Registry> r(new Registry(options));
  if (options.state_path.empty()) return r;
  absl::StatusOr<v1::State> state = ReadStateFile(options.state_path);
  if (absl::IsNotFound(state.status())) {
    // Written now so that an unwritable path fails the start, not the
    // first Register.
    GASP_RETURN_IF_ERROR(WriteStateFile(options.state_path, v1::State()));
    GASP_LOG(Info) << "gasp_nameserver: " << options.state_path
                   << " did not exist; starting with no services";
    return r;
  }
  if (!state.ok()) return state.status();
  absl::MutexLock lock(&r->mu_);
  for (const v1::ServiceRecord& rec : state->services()) {
    r->services_[rec.registration().service()] = rec;
  }
  GASP_LOG(Info) << "gasp_nameserver: loaded " << r->services_.size() << " service(s) from "
                 << options.state_path;
  return r;
}

absl::Status Registry::SaveWith(const std::string& name, const v1::ServiceRecord* record) {
  if (options_.state_path.empty()) return absl::OkStatus();
  v1::State state;
  bool placed = false;
  for (const auto& [n, rec] : services_) {
    // Keep the file sorted by name: insert the new record in its place.
    if (!placed && record != nullptr && name < n) {
      *state.add_services() = *record;
      placed = true;
    }
    if (n == name) {
      if (record != nullptr) *state.add_services() = *record;
      placed = true;
      continue;
    }
    *state.add_services() = rec;
  }
  if (!placed && record != nullptr) *state.add_services() = *record;
  absl::Status st = WriteStateFile(options_.state_path, state);
  if (!st.ok()) {
    GASP_LOG(Error) << "gasp_nameserver: cannot save the state: " << st;
    return absl::InternalError(absl::StrCat("the name server cannot save its state (", st.message(),
                                            "); nothing was changed"));
  }
  return absl::OkStatus();
}

void Registry::Publish(v1::WatchEvent::Kind kind, const v1::ServiceRecord& record) {
  v1::WatchEvent ev;
  ev.set_kind(kind);
  *ev.mutable_service() = MakeSummary(record);
  for (const std::shared_ptr<Watcher::Queue>& q : watchers_) {
    absl::MutexLock lock(&q->mu);
    if (q->overflow) continue;
    if (q->events.size() >= options_.max_watch_backlog) {
      q->overflow = true;
      q->events.clear();
      continue;
    }
    q->events.push_back(ev);
  }
}

absl::StatusOr<v1::RegisterReply> Registry::Register(absl::string_view principal,
                                                     const v1::RegisterRequest& request) {
  if (principal.empty()) return absl::UnauthenticatedError("no principal");
  GASP_RETURN_IF_ERROR(ValidateRegistration(request));
  const std::string& name = request.service();
  absl::MutexLock lock(&mu_);
  auto it = services_.find(name);
  const bool replaced = it != services_.end();
  if (replaced && it->second.owner() != principal) {
    return absl::PermissionDeniedError(
        absl::StrCat("service '", name, "' is registered by '", it->second.owner(), "'; '",
                     principal, "' may not replace it"));
  }
  if (!replaced && services_.size() >= options_.max_services) {
    return absl::ResourceExhaustedError(
        absl::StrFormat("the name server holds %d services, its limit", services_.size()));
  }
  v1::ServiceRecord rec;
  *rec.mutable_registration() = request;
  rec.set_owner(std::string(principal));
  GASP_RETURN_IF_ERROR(SaveWith(name, &rec));
  services_[name] = rec;
  Publish(v1::WatchEvent::REGISTERED, rec);
  GASP_LOG(Info) << "gasp_nameserver: " << (replaced ? "re-registered " : "registered ") << name
                 << " (owner " << principal << ", " << request.methods_size() << " method(s))";
  v1::RegisterReply reply;
  reply.set_owner(std::string(principal));
  reply.set_replaced(replaced);
  return reply;
}

absl::StatusOr<v1::BindReply> Registry::Bind(absl::string_view principal,
                                             const v1::BindRequest& request) const {
  if (principal.empty()) return absl::UnauthenticatedError("no principal");
  GASP_RETURN_IF_ERROR(ValidateServiceName(request.service()));
  absl::ReaderMutexLock lock(&mu_);
  auto it = services_.find(request.service());
  if (it == services_.end()) {
    return absl::NotFoundError(absl::StrCat("no service '", request.service(), "' is registered"));
  }
  return MakeBinding(it->second, principal, request);
}

absl::Status Registry::Unregister(absl::string_view principal, absl::string_view service) {
  if (principal.empty()) return absl::UnauthenticatedError("no principal");
  GASP_RETURN_IF_ERROR(ValidateServiceName(service));
  absl::MutexLock lock(&mu_);
  auto it = services_.find(std::string(service));
  if (it == services_.end()) {
    return absl::NotFoundError(absl::StrCat("no service '", service, "' is registered"));
  }
  if (it->second.owner() != principal) {
    return absl::PermissionDeniedError(absl::StrCat("service '", service, "' is registered by '",
                                                    it->second.owner(), "'; '", principal,
                                                    "' may not unregister it"));
  }
  GASP_RETURN_IF_ERROR(SaveWith(it->first, nullptr));
  v1::ServiceRecord last = std::move(it->second);
  services_.erase(it);
  Publish(v1::WatchEvent::UNREGISTERED, last);
  GASP_LOG(Info) << "gasp_nameserver: unregistered " << service << " (owner " << principal << ")";
  return absl::OkStatus();
}

v1::ListReply Registry::List() const {
  absl::ReaderMutexLock lock(&mu_);
  v1::ListReply reply;
  for (const auto& [name, rec] : services_) *reply.add_services() = MakeSummary(rec);
  return reply;
}

size_t Registry::size() const {
  absl::ReaderMutexLock lock(&mu_);
  return services_.size();
}

absl::StatusOr<std::unique_ptr<Watcher>> Registry::Watch() {
  absl::MutexLock lock(&mu_);
  if (closed_) return absl::UnavailableError("the name server is shutting down");
  if (watchers_.size() >= options_.max_watchers) {
    return absl::ResourceExhaustedError(
        absl::StrFormat("%d Watch streams are open, the name server's limit", watchers_.size()));
  }
  auto q = std::make_shared<Watcher::Queue>();
  {
    absl::MutexLock qlock(&q->mu);
    for (const auto& [name, rec] : services_) {
      v1::WatchEvent ev;
      ev.set_kind(v1::WatchEvent::REGISTERED);
      *ev.mutable_service() = MakeSummary(rec);
      q->events.push_back(std::move(ev));
    }
    v1::WatchEvent synced;
    synced.set_kind(v1::WatchEvent::SYNCED);
    q->events.push_back(std::move(synced));
  }
  watchers_.push_back(q);
  return std::unique_ptr<Watcher>(new Watcher(this, std::move(q)));
}

void Registry::CloseWatchers() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
  for (const std::shared_ptr<Watcher::Queue>& q : watchers_) {
    absl::MutexLock qlock(&q->mu);
    q->closed = true;
  }
}

void Registry::Forget(const Watcher::Queue* queue) {
  absl::MutexLock lock(&mu_);
  watchers_.erase(std::remove_if(watchers_.begin(), watchers_.end(),
                                 [queue](const std::shared_ptr<Watcher::Queue>& q) {
                                   return q.get() == queue;
                                 }),
                  watchers_.end());
}

}  // namespace nameserver
}  // namespace gasp
