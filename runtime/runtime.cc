// The runtime: wires base, boot, gas, transport and consistency together
// behind include/gasp/gasp.h.
#include <sched.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/fd_limit.h"
#include "base/log.h"
#include "base/settings.h"
#include "base/stats.h"
#include "runtime/public_status.h"
#include "base/status.h"
#include "base/wait.h"
#include "boot/bootstrap.h"
#include "boot/endpoint_exchange.h"
#include "boot/job_secret.h"
#include "boot/launch_env.h"
#include "boot/net.h"
#include "consistency/coherence.h"
#include "consistency/sync.h"
#include "gas/fault_report.h"
#include "gas/heap.h"
#include "gas/range.h"
#include "gas/segment.h"
#include "gasp/gasp.h"
#include "runtime/runtime_internal.h"
#include "runtime/state.h"
#include "transport/factory.h"

namespace gasp {
namespace rt {

State* g_state = nullptr;  // runtime.cc only; others use S() / StateOrNull()

State& S() {
  if (g_state == nullptr) {
    std::fprintf(stderr, "gasp: called before gasp::Init (or after Finalize)\n");
    std::abort();
  }
  return *g_state;
}

State* StateOrNull() { return g_state; }

std::string Describe(int rank) {
  if (g_state == nullptr || rank < 0 || rank >= static_cast<int>(g_state->records.size())) {
    return absl::StrFormat("rank %d", rank);
  }
  const boot::RankRecord& r = g_state->records[rank];
  return absl::StrFormat("rank %d (%s:%d)", rank, r.host(), r.pid());
}

// Ends the job. When the cause is another rank's death (Unavailable: peer
// unreachable / lost), this rank is collateral: it exits without claiming
// to be the origin, and the launcher reports the rank that died.
void Die(const absl::Status& status, const char* what) {
  std::string msg = absl::StrFormat("fatal: %s: %s", what, status.message());
  GASP_LOG(Error) << msg;
  if (!absl::IsUnavailable(status) && g_state != nullptr && g_state->boot != nullptr) {
    g_state->boot->Abort(1, msg);
  }
  _exit(1);
}

absl::StatusOr<transport::Region> RegisterHome(State& s, uint64_t offset, uint64_t length,
                                               uint32_t access) {
  absl::StatusOr<transport::Region> r = s.transport->Register(s.range->sys(offset), length, access);
  if (!r.ok()) {
    return Annotate(r.status(), absl::StrFormat(
        "registering %d bytes of home pages with the %s transport (pinned memory: check "
        "ulimit -l, GASP_HEAP_SIZE and the allocation size)",
        length, s.transport->name()));
  }
  s.regions.push_back(*r);
  if (s.coherence != nullptr && (access & transport::kRemoteWrite)) {
    s.coherence->AcceptDiffWrites(offset, length, r->rkey.packed);
  }
  return *r;
}

}  // namespace rt

namespace {

using rt::Check;
using rt::Describe;
using rt::Die;

using rt::g_state;
using rt::S;
using rt::State;
using gas::kPageShift;
using gas::kPageSize;

constexpr size_t kMaxSegments = 1 << 16;
constexpr uint64_t kLockPages = 64;  // one lock segment: 64 pages x 512 words

// Signal context: the coherence layer met an unrecoverable error.
void FatalFromSignal(const char* message, bool peer_failed) {
  LogRawSignalSafe(LogLevel::kError, message);
  if (!peer_failed && g_state != nullptr && g_state->boot != nullptr) {
    g_state->boot->Abort(1, message);
  }
  _exit(1);
}

absl::Status AddSegment(State& s, const gas::Segment& seg) {
  GASP_ASSIGN_OR_RETURN(const gas::Segment* added, s.segments->Add(seg));
  return s.coherence->AddSegment(*added);
}

// "block", "cyclic(4 pages)", "on rank 2", "default (block)": for the
// collective-call check.
std::string PlacementName(const State& s, Placement p) {
  switch (p.policy) {
    case Placement::Policy::kBlock: return "block";
    case Placement::Policy::kCyclic:
      return absl::StrFormat("cyclic(%u pages)", p.block_pages != 0
                                                      ? p.block_pages
                                                      : static_cast<uint32_t>(s.config.cyclic_block_pages));
    case Placement::Policy::kRank: return absl::StrFormat("on rank %d", p.rank);
    case Placement::Policy::kFirstTouch: return "first touch";
    case Placement::Policy::kDefault: return "default (" + s.config.home_policy + ")";
  }
  return "?";
}

Placement::Policy EffectivePolicy(const State& s, Placement placement) {
  if (placement.policy != Placement::Policy::kDefault) return placement.policy;
  if (s.config.home_policy == "cyclic") return Placement::Policy::kCyclic;
  if (s.config.home_policy == "first_touch") return Placement::Policy::kFirstTouch;
  return Placement::Policy::kBlock;
}

absl::StatusOr<uint64_t> CollectiveSegment(State& s, uint64_t bytes, Placement placement,
                                           Domain domain = {}, const char* call = "CoAlloc") {
  uint64_t touch_dir = 0;
  if (EffectivePolicy(s, placement) == Placement::Policy::kFirstTouch) {
    // Its directory first: one word per page, spread over the ranks like a
    // block allocation, so that a rank that touches "its" share of the
    // array in order claims at a local word.
    const uint64_t dir_pages = std::max<uint64_t>(1, (bytes + kPageSize - 1) >> kPageShift);
    GASP_ASSIGN_OR_RETURN(touch_dir, CollectiveSegment(s, dir_pages * 8, Placement::Block(),
                                                       Domain(), "first-touch directory"));
  }
  std::lock_guard<std::mutex> lock(s.alloc_mu);
  s.sync->NoteCollective(absl::StrFormat("%s(%u bytes, %s%s)", call, bytes,
                                         PlacementName(s, placement),
                                         domain.id() != 0 ? absl::StrFormat(", domain %d", domain.id())
                                                          : std::string()));
  uint64_t pages = std::max<uint64_t>(1, (bytes + kPageSize - 1) >> kPageShift);
  uint64_t offset = s.next_collective;
  if (offset + ((pages + static_cast<uint64_t>(s.config.guard_pages)) << kPageShift) > s.heap_area) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "global range exhausted: %d bytes requested, %d of %d bytes left for collective "
        "allocations; raise GASP_SIZE (or lower GASP_HEAP_SIZE)",
        bytes, s.heap_area - offset, s.heap_area));
  }
  gas::Segment seg;
  seg.offset = offset;
  seg.num_pages = pages;
  seg.nranks = s.size;
  seg.collective_seq = s.sync->collective_seq();
  seg.requested_bytes = bytes;
  switch (EffectivePolicy(s, placement)) {
    case Placement::Policy::kRank:
      if (placement.rank < 0 || placement.rank >= s.size) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "Placement::OnRank(%d): the job has ranks 0..%d", placement.rank, s.size - 1));
      }
      seg.policy = gas::HomePolicy::kExplicit;
      seg.home_rank = placement.rank;
      break;
    case Placement::Policy::kCyclic:
      seg.policy = gas::HomePolicy::kCyclic;
      seg.block_pages = placement.block_pages != 0
                            ? placement.block_pages
                            : static_cast<uint32_t>(s.config.cyclic_block_pages);
      break;
    case Placement::Policy::kFirstTouch:
      seg.policy = gas::HomePolicy::kFirstTouch;
      seg.touch_dir = touch_dir;
      s.touch_homes.emplace_back(new std::atomic<int32_t>[pages]);
      for (uint64_t i = 0; i < pages; ++i) s.touch_homes.back()[i].store(-1);
      seg.touch = s.touch_homes.back().get();
      break;
    default:
      seg.policy = gas::HomePolicy::kBlock;
      break;
  }
  // Register this rank's home pages of the segment (the span from its first
  // to its last home page) and exchange the keys: a rank pins only what it
  // is home of, when it is allocated. Any page of a first-touch segment may
  // become this rank's: all of it.
  uint64_t first = UINT64_MAX, end = 0;
  seg.ForEachHomeRun(s.rank, [&](uint64_t p, uint64_t n) {
    first = std::min(first, p);
    end = std::max(end, p + n);
  });
  if (seg.policy == gas::HomePolicy::kFirstTouch) {
    first = offset >> kPageShift;
    end = first + pages;
  }
  if (domain.id() != 0) {
    // A domain's pages: their own registrations, whose keys go only to the
    // ranks granted the domain (remote protection).
    GASP_ASSIGN_OR_RETURN(seg.domain, rt::LocalDomain(s, domain.id()));
    GASP_ASSIGN_OR_RETURN(std::vector<uint64_t>* keys,
                          rt::DomainSegmentKeys(s, domain.id(), offset, first, end));
    seg.rkeys = keys->data();
    GASP_RETURN_IF_ERROR(AddSegment(s, seg));
    GASP_RETURN_IF_ERROR(
        rt::AttachDomainSegment(s, domain.id(), offset, pages << kPageShift));
  } else {
    uint64_t key = 0;
    if (end > first) {
      GASP_ASSIGN_OR_RETURN(transport::Region region,
                            rt::RegisterHome(s, first << kPageShift, (end - first) << kPageShift,
                                             transport::kRemoteAll));
      key = region.rkey.packed;
    }
    GASP_ASSIGN_OR_RETURN(std::vector<uint64_t> keys, s.sync->AllgatherU64(key));
    s.segment_keys.push_back(std::move(keys));
    seg.rkeys = s.segment_keys.back().data();
    GASP_RETURN_IF_ERROR(AddSegment(s, seg));
  }
  // GASP_GUARD_PAGES: unallocated pages after each collective allocation,
  // so that running off its end faults (naming it) instead of landing in
  // the next one.
  s.next_collective = offset + ((pages + static_cast<uint64_t>(s.config.guard_pages)) << kPageShift);
  return s.range->base() + offset;
}

// Valgrind cannot map the default 64G range twice (the system view's mmap
// fails with EINVAL; 32G works): under valgrind, unless GASP_SIZE was given,
// use 32G (docs/debugging.md).
void FitRangeToValgrind(Config& c, const InitOptions& options) {
  constexpr uint64_t kValgrindSize = uint64_t{32} << 30;
  if (!gas::RunningOnValgrind() || c.size_bytes <= kValgrindSize) return;
  if (std::getenv("GASP_SIZE") != nullptr) return;
  for (const auto& [name, value] : options.settings) {
    if (name == "GASP_SIZE") return;
  }
  GASP_LOG(Info) << "running under valgrind: GASP_SIZE=32G instead of the default (set "
                    "GASP_SIZE to override)";
  c.size_bytes = kValgrindSize;
}

// Adaptive waits spin GASP_SPIN_US before they block. When this host's
// ranks outnumber its cores, a spinning waiter holds the core the rank it
// waits for needs (measured: a barrier of 8 ranks on 2 cores took 1.5x as
// long as with blocking waits), so unless GASP_SPIN_US was set, waits block
// at once.
void FitSpinToCores(const Config& c, const InitOptions& options, int local_ranks) {
  if (c.wait_mode != "adaptive" || std::getenv("GASP_SPIN_US") != nullptr ||
      options.settings.count("GASP_SPIN_US") > 0) {
    return;
  }
  cpu_set_t set;
  CPU_ZERO(&set);
  const int cores = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 0;
  if (cores <= 0 || local_ranks <= cores) return;
  SetWaitPolicy(WaitMode::kAdaptive, 0);
  GASP_LOG(Info) << local_ranks << " ranks on this host share " << cores
                 << " cores: waits block at once (GASP_SPIN_US=0; set GASP_SPIN_US to spin anyway)";
}

absl::Status InitLocked(State& s, const InitOptions& options) {
  std::vector<std::string> unknown;
  GASP_ASSIGN_OR_RETURN(
      s.config, LoadConfig(options.settings, [](const char* n) { return std::getenv(n); },
                           &unknown));
  const Config& c = s.config;
  LogLevel level;
  GASP_RETURN_IF_ERROR(ParseLogLevel(c.log_level, &level));
  GASP_RETURN_IF_ERROR(ConfigureLogging(level, c.log_file));
  for (const std::string& u : unknown) {
    GASP_LOG(Warn) << "unknown setting " << u << " in the environment (ignored; see gasp_info -c)";
  }
  SetWaitPolicy(c.wait_mode == "poll"    ? WaitMode::kPoll
                : c.wait_mode == "block" ? WaitMode::kBlock
                                         : WaitMode::kAdaptive,
                c.spin_us);
  FitRangeToValgrind(s.config, options);
  // Reserve the range first, before the launcher's libraries map anything.
  GASP_ASSIGN_OR_RETURN(s.range, gas::GlobalRange::Reserve(c.base, c.size_bytes));
  GASP_ASSIGN_OR_RETURN(s.boot, boot::CreateBootstrap(c));
  s.rank = s.boot->rank();
  s.size = s.boot->size();
  SetLogRank(s.rank, s.size);
  FitSpinToCores(c, options, s.boot->local_size());
  // Checked before connecting: a bad GASP_STATS_FILE should not cost a job.
  GASP_ASSIGN_OR_RETURN(s.stats_export,
                        rt::StatsExporter::Create(c.stats_file, c.stats_interval,
                                                  {s.rank, s.size, boot::ShortHostName(),
                                                   static_cast<int>(getpid())}));
  const absl::Time deadline = absl::Now() + c.timeout;
  GASP_ASSIGN_OR_RETURN(s.secret, boot::ObtainJobSecret(*s.boot, deadline));
  absl::StatusOr<boot::LaunchEnv> launch =
      boot::DetectLaunchEnv([](const char* name) { return std::getenv(name); });
  // A rank that runs as a job of its own (GASP_BOOT=single under a
  // launcher) does not take the launcher's job id.
  const bool launcher_job = launch.ok() && launch->size == s.size;
  s.job_id = boot::JobIdOf(launcher_job ? launch->job_id : "", s.secret);

  transport::TransportOptions topts;
  topts.rank = s.rank;
  topts.size = s.size;
  topts.timeout = c.timeout;
  topts.tcp_addr = c.tcp_addr.empty() ? s.boot->LocalAddressHint() : c.tcp_addr;
  s.advertised_host = topts.tcp_addr.empty() || topts.tcp_addr == "0.0.0.0"
                          ? transport::DefaultHostAddress()
                          : topts.tcp_addr;
  s.bind_all = topts.tcp_addr == "0.0.0.0";
  topts.tcp_port = static_cast<int>(c.tcp_port);
  topts.local_rank = s.boot->local_rank();
  topts.local_size = s.boot->local_size();
  topts.net_devices = c.net_devices;
  topts.ib_gid_index = static_cast<int>(c.ib_gid_index);
  topts.ib_timeout = static_cast<int>(c.ib_timeout);
  topts.ib_retry_count = static_cast<int>(c.ib_retry_count);
  topts.job_secret.assign(reinterpret_cast<const char*>(s.secret.bytes.data()),
                          s.secret.bytes.size());
  GASP_ASSIGN_OR_RETURN(s.transport, transport::CreateTransport(c.transport, topts));

  // Per-rank heaps at the top of the range, each homed at its rank.
  const uint64_t heaps = c.heap_bytes * static_cast<uint64_t>(s.size);
  if (heaps > c.size_bytes / 2) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%d ranks x GASP_HEAP_SIZE=%d exceed half of GASP_SIZE=%d; raise GASP_SIZE or lower "
        "GASP_HEAP_SIZE",
        s.size, c.heap_bytes, c.size_bytes));
  }
  s.heap_area = c.size_bytes - heaps;
  const uint64_t my_heap = s.heap_area + c.heap_bytes * static_cast<uint64_t>(s.rank);
  GASP_ASSIGN_OR_RETURN(transport::Region heap_region, rt::RegisterHome(s, my_heap, c.heap_bytes, transport::kRemoteAll));

  transport::EndpointBlob blob = s.transport->LocalEndpoint();
  boot::RankRecord mine = boot::MakeRankRecord(
      s.rank, absl::string_view(reinterpret_cast<const char*>(blob.bytes), sizeof(blob.bytes)));
  mine.set_sys_base(reinterpret_cast<uint64_t>(s.range->sys_base()));
  mine.set_heap_key(heap_region.rkey.packed);
  mine.set_range_base(c.base);
  mine.set_range_bytes(c.size_bytes);
  GASP_ASSIGN_OR_RETURN(s.records, boot::ExchangeRecords(*s.boot, mine, deadline));
  std::vector<transport::EndpointBlob> blobs(s.size);
  std::vector<consistency::HomeInfo> homes(s.size);
  std::vector<uint64_t> heap_keys(s.size);
  for (int r = 0; r < s.size; ++r) {
    const boot::RankRecord& rec = s.records[r];
    if (rec.range_base() != c.base || rec.range_bytes() != c.size_bytes) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s uses GASP_BASE=%#x GASP_SIZE=%#x but this rank uses GASP_BASE=%#x GASP_SIZE=%#x; "
          "every rank must use the same values",
          Describe(r), rec.range_base(), rec.range_bytes(), c.base, c.size_bytes));
    }
    static_assert(boot::kRankRecordBlobBytes == sizeof(blobs[r].bytes));
    // DecodeRankRecord bounds the blob by the endpoint size; shorter ones
    // are zero-padded as they were before encoding.
    std::memcpy(blobs[r].bytes, rec.transport_blob().data(), rec.transport_blob().size());
    homes[r].sys_base = rec.sys_base();
    heap_keys[r] = rec.heap_key();
  }
  GASP_RETURN_IF_ERROR(s.transport->Connect(blobs));
  s.transport->SetPeerFailureHandler([](int peer, const absl::Status& status) {
    Die(absl::UnavailableError(status.message()), absl::StrCat("lost ", Describe(peer)).c_str());
  });
  s.boot->SetJobFailureHandler([](int rank, const std::string& why) {
    std::string msg = absl::StrCat("fatal: ", why);
    GASP_LOG(Error) << msg;
    _exit(1);
  });

  s.segments = std::make_unique<gas::SegmentTable>(kMaxSegments);
  // Protection first: its fault handler must see violations before the
  // coherence handler sees misses.
  GASP_RETURN_IF_ERROR(rt::InitProtection(s));
  consistency::CoherenceOptions co;
  co.rank = s.rank;
  co.nranks = s.size;
  co.prefetch_pages = static_cast<int>(c.prefetch_pages);
  co.prefetch_max_pages = static_cast<int>(std::max(c.prefetch_max_pages, c.prefetch_pages));
  co.max_dirty_pages = static_cast<int>(c.max_dirty_pages);
  co.packed_diffs = c.packed_diffs;
  co.diff_direct_bytes = static_cast<uint32_t>(c.diff_direct_bytes);
  co.home_open_pages = static_cast<uint32_t>(c.home_open_pages);
  co.refresh_pages = static_cast<uint32_t>(c.refresh_pages);
  co.timeout = c.timeout;
  if (s.transport->capabilities().zero_copy_registered_local && c.cache_reg_chunk > 0) {
    co.cache_reg_chunk = c.cache_reg_chunk;
    transport::Transport* t = s.transport.get();
    co.register_local = [t](char* addr, uint64_t length) {
      return t->Register(addr, length, 0).status();
    };
  }
  GASP_ASSIGN_OR_RETURN(s.coherence,
                        consistency::Coherence::Create(s.range.get(), s.segments.get(),
                                                       s.transport.get(), std::move(homes), co,
                                                       FatalFromSignal));
  // Registrations made before the coherence layer existed (the heap).
  for (const transport::Region& region : s.regions) {
    if (region.access & transport::kRemoteWrite) {
      s.coherence->AcceptDiffWrites(
          static_cast<uint64_t>(static_cast<char*>(region.addr) - s.range->sys_base()),
          region.length, region.rkey.packed);
    }
  }
  rt::ConnectProtection(s);
  GASP_RETURN_IF_ERROR(s.coherence->Install());
  s.sync = std::make_unique<consistency::Sync>(s.coherence.get(), s.transport.get(), s.rank,
                                               s.size, c.timeout, Describe);

  s.segment_keys.push_back(std::move(heap_keys));
  for (int r = 0; r < s.size; ++r) {
    gas::Segment seg;
    seg.offset = s.heap_area + c.heap_bytes * static_cast<uint64_t>(r);
    seg.num_pages = c.heap_bytes >> kPageShift;
    seg.policy = gas::HomePolicy::kExplicit;
    seg.home_rank = r;
    seg.nranks = s.size;
    seg.rkeys = s.segment_keys.front().data();
    GASP_RETURN_IF_ERROR(AddSegment(s, seg));
  }
  s.heap = std::make_unique<gas::HeapAllocator>(c.base + my_heap, c.heap_bytes);
  if (c.notice_log_entries > 0) {
    // The write-notice log of lock and atomic hand-offs, homed at rank 0.
    const uint64_t entries = static_cast<uint64_t>(c.notice_log_entries);
    GASP_ASSIGN_OR_RETURN(uint64_t log, CollectiveSegment(s, consistency::NoticeLog::BytesFor(entries),
                                                          Placement::OnRank(0), Domain(),
                                                          "notice log"));
    s.sync->SetNoticeLog(log, entries);
  }
  {
    // Queue nodes of global locks (consistency/queue_lock.h): each rank's
    // pool on pages of its own, homed there.
    const uint64_t node_pages =
        (static_cast<uint64_t>(c.lock_nodes) * sizeof(consistency::QueueNode) + kPageSize - 1) >>
        kPageShift;
    GASP_ASSIGN_OR_RETURN(
        uint64_t nodes,
        CollectiveSegment(s, (node_pages << kPageShift) * s.size,
                          Placement::Cyclic(static_cast<uint32_t>(node_pages)), Domain(),
                          "lock queue nodes"));
    s.sync->SetLockNodes(nodes, node_pages << kPageShift, static_cast<uint32_t>(c.lock_nodes));
  }
  {
    // Arrival words: a page per rank, page r homed at rank r (sync_probe.cc).
    GASP_ASSIGN_OR_RETURN(uint64_t words, CollectiveSegment(s, kPageSize * s.size,
                                                            Placement::Cyclic(1), Domain(),
                                                            "arrival words"));
    s.sync->SetArrivalWords(words, kPageSize);
  }
  // End-to-end check of the transport (connects every ring neighbour).
  GASP_RETURN_IF_ERROR(s.sync->BarrierOnly());
  GASP_LOG(Info) << "initialized: " << s.size << " ranks, boot=" << s.boot->method()
                 << ", transport=" << s.transport->name() << ", range="
                 << absl::StrFormat("[%#x, %#x)", c.base, c.base + c.size_bytes);
  if (s.stats_export != nullptr) s.stats_export->Start();
  return absl::OkStatus();
}

uint64_t Addr(const void* p) { return reinterpret_cast<uint64_t>(p); }


consistency::Ordering OrderingOf(std::memory_order order) {
  consistency::Ordering o;
  o.release = order == std::memory_order_release || order == std::memory_order_acq_rel ||
              order == std::memory_order_seq_cst;
  o.acquire = order == std::memory_order_acquire || order == std::memory_order_acq_rel ||
              order == std::memory_order_seq_cst || order == std::memory_order_consume;
  return o;
}

}  // namespace

Result<Runtime> Init(int* argc, char*** argv, const InitOptions& options) {
  (void)argc;
  if (g_state != nullptr) {
    return Status(StatusCode::kFailedPrecondition, "gasp::Init called twice");
  }
  // Before any fault handler: fault reports unwind and symbolize in signal
  // context, which needs the unwinder loaded and the symbolizer set up.
  gas::InitFaultReports(argv != nullptr && *argv != nullptr ? (*argv)[0] : nullptr);
  // Before any socket exists: floods must meet the handshake deadlines, not
  // EMFILE (base/fd_limit.h).
  RaiseDescriptorLimit();
  auto state = std::make_unique<State>();
  g_state = state.get();
  absl::Status s = InitLocked(*state, options);
  if (!s.ok()) {
    g_state = nullptr;
    if (state->transport) state->transport->Shutdown(absl::Now() + absl::Seconds(1)).IgnoreError();
    return ToPublic(s);
  }
  state.release();
  return Runtime();
}

int Runtime::rank() const { return S().rank; }
int Runtime::size() const { return S().size; }
int Rank() { return S().rank; }
int Size() { return S().size; }

int Runtime::Finalize() {
  State& s = S();
  s.sync->NoteCollective("Finalize()");
  absl::Status st = s.sync->FinalBarrier();
  if (!st.ok()) Die(st, "final barrier");
  // Every rank is here: nobody calls this rank's services any more.
  for (auto& fn : s.at_finalize) fn();
  s.at_finalize.clear();
  if (s.config.stats) {
    std::string report = FormatStats(LogPrefix() + " stats ");
    std::fwrite(report.data(), 1, report.size(), stderr);
  }
  if (s.stats_export != nullptr) {
    st = s.stats_export->Finish();
    if (!st.ok()) {
      GASP_LOG(Warn) << st;  // metrics never fail the job
    }
  }
  absl::Time deadline = absl::Now() + s.config.timeout;
  int rc = 0;
  st = s.transport->Shutdown(deadline);
  if (!st.ok()) {
    GASP_LOG(Warn) << "transport shutdown: " << st;
    rc = 1;
  }
  st = s.boot->Finalize(deadline);
  if (!st.ok()) {
    GASP_LOG(Warn) << "bootstrap finalize: " << st;
    rc = 1;
  }
  s.protection.reset();  // its shutdown re-applies page states: before coherence
  s.coherence.reset();
  g_state = nullptr;
  delete &s;
  return rc;
}

Result<void*> TryCoAlloc(size_t bytes, Placement placement, Domain domain) {
  absl::StatusOr<uint64_t> a = CollectiveSegment(S(), bytes, placement, domain);
  if (!a.ok()) return ToPublic(a.status());
  return reinterpret_cast<void*>(*a);
}

void* CoAlloc(size_t bytes, Placement placement, Domain domain) {
  absl::StatusOr<uint64_t> a = CollectiveSegment(S(), bytes, placement, domain);
  if (!a.ok()) Die(a.status(), "gasp::CoAlloc");
  return reinterpret_cast<void*>(*a);
}

Result<void*> TryAlloc(size_t bytes, size_t align) {
  absl::StatusOr<uint64_t> a = S().heap->Allocate(bytes, align);
  if (!a.ok()) return ToPublic(a.status());
  return reinterpret_cast<void*>(*a);
}

void* Alloc(size_t bytes, size_t align) {
  absl::StatusOr<uint64_t> a = S().heap->Allocate(bytes, align);
  if (!a.ok()) Die(a.status(), "gasp::Alloc");
  return reinterpret_cast<void*>(*a);
}

void Free(void* p) {
  if (p == nullptr) return;
  Check(S().heap->Free(Addr(p)), "gasp::Free");
}

void Barrier() {
  S().sync->NoteCollective("Barrier()");
  Check(S().sync->Barrier(), "gasp::Barrier");
}
void Allreduce(const double* in, double* out, size_t n, ReduceOp op) {
  const char* name = op == ReduceOp::kMin ? "min" : op == ReduceOp::kMax ? "max" : "sum";
  if (n == 0 || n > kMaxAllreduceValues) {
    Die(absl::InvalidArgumentError(absl::StrFormat(
            "%d values: pass 1..%d per call (split larger reductions)", n, kMaxAllreduceValues)),
        "gasp::Allreduce");
  }
  S().sync->NoteCollective(absl::StrFormat("Allreduce(n=%u, %s)", n, name));
  const consistency::Sync::ReduceOp sop = op == ReduceOp::kMin   ? consistency::Sync::ReduceOp::kMin
                                          : op == ReduceOp::kMax ? consistency::Sync::ReduceOp::kMax
                                                                 : consistency::Sync::ReduceOp::kSum;
  std::vector<double> mine(in, in + n);  // `out` may alias `in`
  Check(S().sync->BarrierReduce(mine, sop, out), "gasp::Allreduce");
}

double Allreduce(double value, ReduceOp op) {
  double out = 0;
  Allreduce(&value, &out, 1, op);
  return out;
}

void Release() { Check(S().sync->Release(), "gasp::Release"); }
void Acquire() { Check(S().sync->Acquire(), "gasp::Acquire"); }
void Release(const void* p, size_t n) {
  Check(S().coherence->ReleaseRange(Addr(p), n), "gasp::Release(range)");
}
void Acquire(const void* p, size_t n) {
  Check(S().coherence->AcquireRange(Addr(p), n), "gasp::Acquire(range)");
}

void GlobalLock::lock() {
  if (word_ == nullptr) Die(absl::FailedPreconditionError("default-constructed lock"), "lock");
  Check(S().sync->Lock(Addr(word_)), "gasp::GlobalLock::lock");
}
void GlobalLock::unlock() { Check(S().sync->Unlock(Addr(word_)), "gasp::GlobalLock::unlock"); }
bool GlobalLock::try_lock() {
  absl::StatusOr<bool> r = S().sync->TryLock(Addr(word_));
  if (!r.ok()) Die(r.status(), "gasp::GlobalLock::try_lock");
  return *r;
}

GlobalLock CoNewLock() {
  State& s = S();
  s.sync->NoteCollective("CoNewLock()");
  const uint64_t per_segment = kLockPages * (kPageSize / 8);
  if (s.lock_segment == 0 || s.next_lock == per_segment) {
    // Cyclic with one-page blocks spreads lock homes over the ranks.
    absl::StatusOr<uint64_t> seg =
        CollectiveSegment(s, kLockPages * kPageSize, Placement::Cyclic(1), Domain(), "CoNewLock");
    if (!seg.ok()) Die(seg.status(), "gasp::CoNewLock");
    s.lock_segment = *seg;
    s.next_lock = 0;
  }
  uint64_t k = s.next_lock++;
  uint64_t addr = s.lock_segment + (k % kLockPages) * kPageSize + (k / kLockPages) * 8;
  return GlobalLock(reinterpret_cast<uint64_t*>(addr));
}

GlobalLock NewLock() {
  return GlobalLock(static_cast<uint64_t*>(Alloc(sizeof(uint64_t), 8)));
}

uint64_t AtomicFetchAdd(uint64_t* p, uint64_t value, std::memory_order order) {
  absl::StatusOr<uint64_t> r = S().sync->FetchAdd(Addr(p), value, OrderingOf(order));
  if (!r.ok()) Die(r.status(), "gasp::AtomicFetchAdd");
  return *r;
}

bool AtomicCompareExchange(uint64_t* p, uint64_t* expected, uint64_t desired,
                           std::memory_order order) {
  absl::StatusOr<uint64_t> r = S().sync->CompareSwap(Addr(p), *expected, desired, OrderingOf(order));
  if (!r.ok()) Die(r.status(), "gasp::AtomicCompareExchange");
  bool ok = *r == *expected;
  *expected = *r;
  return ok;
}

uint64_t AtomicLoad(uint64_t* p, std::memory_order order) {
  absl::StatusOr<uint64_t> r = S().sync->Load(Addr(p), OrderingOf(order));
  if (!r.ok()) Die(r.status(), "gasp::AtomicLoad");
  return *r;
}

void AtomicStore(uint64_t* p, uint64_t value, std::memory_order order) {
  Check(S().sync->Store(Addr(p), value, OrderingOf(order)), "gasp::AtomicStore");
}

bool IsGlobal(const void* p) { return g_state != nullptr && S().range->Contains(Addr(p)); }
int HomeOf(const void* p) { return S().coherence->HomeOf(Addr(p)); }

void Abort(int exit_code, const std::string& message) {
  GASP_LOG(Error) << "gasp::Abort(" << exit_code << "): " << message;
  if (g_state != nullptr && g_state->boot != nullptr) g_state->boot->Abort(exit_code, message);
  _exit(exit_code);
}

std::string StatsReport() { return FormatStats(""); }

namespace internal {
transport::Transport* GetTransport() { return S().transport.get(); }
gas::GlobalRange* GetRange() { return S().range.get(); }
consistency::Coherence* GetCoherence() { return S().coherence.get(); }
consistency::Sync* GetSync() { return S().sync.get(); }
const Config& GetConfig() { return S().config; }
protect::Protection* GetProtection() { return S().protection.get(); }
std::string JobId() { return S().job_id; }
void AtFinalize(std::function<void()> fn) { S().at_finalize.push_back(std::move(fn)); }
std::string AdvertisedHost() { return S().advertised_host; }
std::string ListenHost() { return S().bind_all ? "0.0.0.0" : S().advertised_host; }
const boot::JobSecret& JobSecret() { return S().secret; }
std::string DescribeRank(int rank) { return Describe(rank); }
}  // namespace internal

}  // namespace gasp
