// Home-based release consistency over one-sided operations
// (docs/protocol.md has the states, transitions and messages).
//
//   read fault   READ the page and a prefetch window from its home into the
//                system view, then open the app view for reading.
//   write fault  mark the page dirty, copy it into a twin, open it.
//   release      write-protect dirty pages, diff them against their twins,
//                send short runs in one packed message per home and long
//                runs as WRITEs; note every page written (write notices).
//   acquire      invalidate the cached pages other ranks' notices name
//                (dirty ones are written home first).
// Home pages are mapped from the backing store, closed until written: the
// first write to a block of them in each notice interval faults and is
// noted; blocks written interval after interval stay open ("hot") and are
// noted wholesale at every take.
//
// Files: coherence.cc (creation, faults), coherence_release.cc (release,
// invalidation, packed diffs), coherence_sharing.cc (notices, hot blocks),
// coherence_touch.cc (first-touch placement).
//
// Thread safety: faults from several threads run concurrently (per-page
// busy bits and futex waits); release, invalidation and notice taking are
// serialized by one mutex that the fault path never holds while a page is
// busy.
#ifndef GASP_CONSISTENCY_COHERENCE_H_
#define GASP_CONSISTENCY_COHERENCE_H_

#include <signal.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "absl/time/time.h"
#include "consistency/diff.h"
#include "consistency/diff_service.h"
#include "consistency/diff_wire.h"
#include "consistency/notices.h"
#include "consistency/page_state.h"
#include "gas/range.h"
#include "gas/segment.h"
#include "transport/transport.h"

namespace gasp {
namespace consistency {

// Where a rank's home pages can be reached: the base of its system view.
// Remote keys are per segment (gas::Segment::rkeys): a rank registers only
// the home pages it has, when they are allocated.
struct HomeInfo {
  uint64_t sys_base = 0;
};

struct CoherenceOptions {
  int rank = 0;
  int nranks = 1;
  int prefetch_pages = 4;
  int prefetch_max_pages = 64;  // the window sequential faults grow it to
  int max_dirty_pages = 65536;
  absl::Duration timeout = absl::Seconds(60);
  // Cache registration (GASP_CACHE_REG_CHUNK): when > 0 and
  // `register_local` is set, the first fetch into each chunk of this many
  // bytes of the system view asks a background thread to register the chunk
  // for local use, so that later fetches into it land without a bounce
  // copy. Registering pins the chunk (memory grows by chunk, not by page).
  uint64_t cache_reg_chunk = 0;
  // Packed diffs (GASP_PACKED_DIFFS): byte runs shorter than
  // `diff_direct_bytes` go to their home in one message per home, applied
  // by the home's diff thread; longer runs (and every run of a page in a
  // protection domain) go as one-sided WRITEs.
  bool packed_diffs = true;
  uint32_t diff_direct_bytes = 1024;
  // Home pages opened together by one write fault (GASP_HOME_OPEN_PAGES),
  // 1..kMaxHomeOpenPages.
  uint32_t home_open_pages = 64;
  // Refresh in place (GASP_REFRESH_PAGES): at an acquire of a barrier or
  // lock, clean copies that were read again after an earlier acquire
  // dropped them are fetched anew while they stay readable, up to this many
  // pages per acquire, instead of being dropped and faulted in again
  // (docs/protocol.md, "Refresh in place"). 0: always drop.
  uint32_t refresh_pages = 8192;
  std::function<absl::Status(char* addr, uint64_t length)> register_local;
};

// Ends the job after an unrecoverable error in signal context (message is
// a complete sentence). `peer_failed` says the cause is another rank's
// death (this rank is collateral, not the origin). Must not return.
using FatalHandler = void (*)(const char* message, bool peer_failed);

// The most page protection (PROT_* bits) pages of protection domain
// `domain` may have right now. Async-signal-safe.
using ProtCapFn = int (*)(int domain, void* context);

inline constexpr uint32_t kMaxHomeOpenPages = 512;
// How far ahead of a read fault pages that an acquire dropped are fetched
// again with it (the halo or vector an iterative code re-reads).
inline constexpr uint64_t kRefetchSpanPages = 1024;

class Coherence {
 public:
  // `range`, `segments`, `transport` must outlive the object. `homes` is
  // indexed by rank.
  static absl::StatusOr<std::unique_ptr<Coherence>> Create(gas::GlobalRange* range,
                                                           const gas::SegmentTable* segments,
                                                           transport::Transport* transport,
                                                           std::vector<HomeInfo> homes,
                                                           const CoherenceOptions& options,
                                                           FatalHandler fatal);
  ~Coherence();

  // Registers the fault handler with the process-wide dispatcher, and
  // starts the diff thread that applies other ranks' packed diffs to this
  // rank's home pages.
  absl::Status Install();

  // Packed diffs may write [offset, offset+length) of the range under
  // `rkey` (a registration with remote-write rights). Call before the key
  // is handed to other ranks.
  void AcceptDiffWrites(uint64_t offset, uint64_t length, uint64_t rkey) {
    diff_service_->AcceptWrites(offset, length, rkey);
  }

  // Opens this rank's home runs of `segment` read-write and marks them home.
  // Call on every rank right after the segment is added to the table.
  absl::Status AddSegment(const gas::Segment& segment);

  // Release / acquire of everything, or of the pages overlapping
  // [addr, addr+length) (selective consistency).
  absl::Status Release();
  absl::Status Acquire();
  absl::Status ReleaseRange(uint64_t addr, uint64_t length);
  absl::Status AcquireRange(uint64_t addr, uint64_t length);

  // Write notices (docs/protocol.md). Every page this rank writes home (by
  // a diff) or writes as its home is noted in two sets: since the last
  // barrier, and since the last publication to the notice log.
  enum class NoticeSet { kSinceBarrier, kSincePublished };
  // Appends the pages of `set` as ascending runs and empties the set; home
  // pages among them are closed (read-only) until their next write.
  absl::Status TakeNotices(NoticeSet set, std::vector<PageRun>* runs);
  // Invalidates the cached copies of the pages in `runs` (dirty ones are
  // written home first, see InvalidateLocked); pages not cached and home
  // pages are left alone. The acquire of a barrier or lock whose notices
  // name these pages.
  // With `may_refresh`, clean copies read again since an earlier drop are
  // refreshed in place instead (RefreshLocked): remote READs, so not after
  // a barrier that peers may leave right away.
  absl::Status AcquireRuns(absl::Span<const PageRun> runs, bool may_refresh = true);
  // Hot-block classification: pages are grouped in blocks of
  // HotBlockPages(num_pages) pages (at most 2^18 blocks).
  static uint64_t HotBlockPages(uint64_t num_pages) {
    uint64_t b = 64;
    while (num_pages / b > (uint64_t{1} << 18)) b *= 2;
    return b;
  }

  // Invalidates every cached copy (an acquire when notices were lost).
  absl::Status InvalidateAll();
  uint64_t num_pages() const { return range_->num_pages(); }

  // Home rank of a global address (-1 if outside every segment, or a page
  // of a first-touch segment that no rank has written yet; the directory is
  // read, nothing is claimed).
  int HomeOf(uint64_t addr);
  // Home rank of the word at `addr` for an atomic or a lock: like HomeOf,
  // but an atomic is a write, so an untouched first-touch page is claimed
  // by this rank. Not for signal context.
  int HomeForAtomic(uint64_t addr);

  // Remote address of `addr` at its home, for atomics and locks.
  uint64_t HomeAddress(int home, uint64_t addr) const {
    return homes_[home].sys_base + (addr - range_->base());
  }
  // Remote key covering `addr` at `home` (zero key if not allocated).
  transport::RemoteKey HomeKey(uint64_t addr, int home) const;
  // A one-sided op of `type` on global address `addr` at its home `home`:
  // peer, remote address and key filled in, wr_id = addr; the caller sets
  // local, length, compare, operand.
  transport::Op HomeOp(transport::OpType type, int home, uint64_t addr) const {
    transport::Op op;
    op.type = type;
    op.peer = home;
    op.remote_addr = HomeAddress(home, addr);
    op.rkey = HomeKey(addr, home);
    op.wr_id = addr;
    return op;
  }

  // Caps every app-view protection this layer sets on a page of a segment
  // with a non-zero domain by cap(domain), so that a closed domain stays
  // closed while its pages change state (the mprotect protection backend).
  // Call before the first segment with a domain is added.
  void SetProtCap(ProtCapFn cap, void* context) {
    cap_ = cap;
    cap_context_ = context;
  }

  // Sets the app-view protection of [offset, offset+length) (page aligned)
  // to min(each page's state, max_prot) and, if pkey >= 0, its protection
  // key. Waits for busy pages and holds each page busy while changing it,
  // so it never races a fault or a release. Returns 0 or an errno value.
  // Not for signal context. This is the runtime's protect::ApplyProtFn.
  int ApplyProtection(uint64_t offset, uint64_t length, int max_prot, int pkey);

  // Function shipping (consistency/bundle.h) ------------------------------

  // Appends, in order, the pages overlapping [addr, addr+length) that this
  // rank is the home of (their contents are current).
  void HomePagesIn(uint64_t addr, uint64_t length, std::vector<uint64_t>* pages) const;
  // Number of pages overlapping [addr, addr+length) that are allocated but
  // have no valid copy here (a load would fetch them).
  uint64_t MissingPages(uint64_t addr, uint64_t length) const;
  // True when this rank holds a clean cached copy of `page` (state READ).
  bool HasCleanCopy(uint64_t page) const {
    return page < range_->num_pages() &&
           state(page).load(std::memory_order_acquire) == MakeWord(kRead);
  }
  // The word at global address `addr` in the system view (the home copy,
  // where one-sided operations land), for words only this rank writes.
  uint64_t* SysWord(uint64_t addr) const {
    return reinterpret_cast<uint64_t*>(range_->sys(addr - range_->base()));
  }
  // The 4 KiB of `page` (index in the range) in the system view.
  const uint8_t* PageBytes(uint64_t page) const {
    return reinterpret_cast<const uint8_t*>(range_->sys(page << gas::kPageShift));
  }
  // Installs copies of the consecutive pages [first, first + data.size())
  // that their home `from_rank` just sent (data[i]: 4 KiB, or nullptr for
  // zeros) as this rank's cached copies: INVALID or READ pages take the
  // contents and become READ (one mprotect per run); dirty and home pages
  // are left alone. Returns how many were installed. InvalidArgument, with
  // nothing installed, if a page is not allocated or `from_rank` is not its
  // home. Not for signal context.
  absl::StatusOr<uint64_t> InstallFromHome(uint64_t first, absl::Span<const uint8_t* const> data,
                                           int from_rank);
  // Updates a clean cached copy of `page` (state READ) to contents its home
  // sent as a change against that copy: `patch(copy, out)` writes the new
  // contents (4 KiB) into `out` and returns whether they are right (the
  // caller checks hashes). If so they replace the copy, which stays READ,
  // with no protection change. Returns false, changing nothing, if the page
  // is not a clean copy or `patch` refuses. The caller has checked that the
  // sender is the page's home. The page is held busy throughout, so no
  // fault, release or invalidation sees it half written. Not for signal
  // context.
  bool PatchCleanCopy(uint64_t page, absl::FunctionRef<bool(const uint8_t*, uint8_t*)> patch);

  // Chunks registered for local use so far (cache registration; tests).
  uint64_t registered_chunks() const { return registered_chunks_.load(); }

  // Pages currently dirty (tests, stats).
  uint64_t dirty_pages() const { return dirty_count_.load(); }

  // Changes the prefetch window at run time (benchmarks compare settings).
  void set_prefetch_pages(int pages) { prefetch_pages_.store(pages); }

  // Fault entry point (signal context). Returns false if not ours.
  bool HandleFault(siginfo_t* info, ucontext_t* uc);

 private:
  Coherence(gas::GlobalRange* range, const gas::SegmentTable* segments,
            transport::Transport* transport, std::vector<HomeInfo> homes,
            const CoherenceOptions& options, FatalHandler fatal);

  std::atomic<uint32_t>& state(uint64_t page) const { return states_[page]; }
  void ReadFault(uint64_t page, const gas::Segment& seg);
  // An access inside the range but outside every allocation: reports it
  // (gas/fault_report.h) and ends the job naming the address and the
  // nearest allocations. Signal context.
  [[noreturn]] void OutsideAllocation(const siginfo_t* info, const ucontext_t* uc,
                                      bool write) const;
  void WriteFault(uint64_t page, const gas::Segment& seg);
  // First-touch placement (coherence_touch.cc). Finds the home of a page of
  // a first-touch segment that is unknown here: reads the directory, and
  // claims the page for this rank if `claim` (a write) and nobody has, or
  // (a read of a page nobody wrote) installs a zero copy. Returns the home,
  // or -1 for a zero copy. Signal-safe.
  int ResolveTouch(uint64_t page, const gas::Segment& seg, bool claim);
  void BecomeTouchHome(uint64_t page, const gas::Segment& seg, uint32_t before);
  void InstallZeroCopy(uint64_t page, const gas::Segment& seg);
  // Reads the directory words from `page` on (to the end of their
  // directory page, at most 64), records the homes other ranks claimed, and
  // returns the word of `page`.
  uint64_t LearnTouchHomes(uint64_t page, const gas::Segment& seg);
  uint64_t CompareSwapTouch(uint64_t page, const gas::Segment& seg, uint64_t expected,
                            uint64_t desired);
  uint64_t TouchWordAddr(const gas::Segment& seg, uint64_t page) const;
  void TouchOp(transport::Op* op, uint64_t word_addr, uint64_t page);
  void RunTouchOp(const transport::Op& op, uint64_t page);
  int TouchHomeOfWord(uint64_t word, uint64_t page) const;
  // HomeOf (claim: false) and HomeForAtomic (claim: true).
  int HomeOfAddress(uint64_t addr, bool claim);
  // First write to a closed home page: note it, open it.
  void HomeWriteFault(uint64_t page, const gas::Segment& seg);
  // Records a write notice for `page` in both sets (signal-safe).
  void NoteWritten(uint64_t page);
  // A home write fault on `page` in the current interval: promotes its
  // block to hot if it faulted in one of the two before (signal-safe).
  void NoteHomeWriteInterval(uint64_t page);
  // Notes the open home pages of hot blocks in `bits` (one of the two
  // notice sets) and demotes the blocks hot for kHotIntervals.
  void NoteHotBlocksLocked(PageBitmap& bits, uint32_t interval);
  // Closes the open ones among home pages `pages` (ascending; not in
  // scratch_dirty_), waiting for busy ones, so their next store faults.
  absl::Status CloseHomePagesLocked(const uint64_t* pages, size_t n);
  // Waits until the page is not busy (or the deadline: fatal).
  void WaitNotBusy(uint64_t page, uint32_t seen);
  // Wakes the waiters of a page state word, with no system call when
  // nobody waits on any page (the common case on the fault path).
  void WakePage(std::atomic<uint32_t>* st);
  // Sets the page's busy bit once it is clear (waiting); returns the word
  // from before (busy bit clear).
  uint32_t TakeBusy(uint64_t page);
  uint32_t AllocTwin();  // returns slot + 1, releasing early when full
  void FreeTwin(uint32_t slot_plus_one);
  // `may_pack`: false in signal context (the fault path's early release),
  // where messages cannot be sent; runs then go as one-sided WRITEs.
  absl::Status ReleaseLocked(uint64_t first_page, uint64_t end_page, bool may_pack = true);
  // With `refresh_budget`, clean pages in reread_ are refreshed in place
  // (RefreshLocked) while the budget lasts, decrementing it; the others
  // are dropped. Without, every cached page in the span is dropped.
  absl::Status InvalidateLocked(uint64_t first_page, uint64_t end_page,
                                uint64_t* refresh_budget = nullptr);
  // Fetches busy clean pages `pages` (ascending) anew from their homes
  // into the system view, leaving their protection alone.
  absl::Status RefreshLocked(const uint64_t* pages, size_t n);
  // Refresh budget of the next notice-driven acquire: every
  // kRefreshProbeInterval-th gets none, so that pages no longer read stop
  // being refreshed (they are dropped, and come back only if read again).
  uint64_t NextRefreshBudgetLocked();
  static constexpr uint32_t kRefreshProbeInterval = 8;
  // Longest READ of a refresh (Capabilities::max_op_bytes is at least 1 MiB).
  static constexpr uint64_t kRefreshRunPages = 256;
  // Takes the pages [first, end) busy if every one is invalid (so already
  // PROT_NONE), so that InvalidateLocked may close one run across them;
  // false (none taken) otherwise, or past the bounds below.
  bool BridgeGapLocked(uint64_t first, uint64_t end);
  void ReleaseBridgedLocked();
  static constexpr uint64_t kMaxBridgePages = 64;
  static constexpr size_t kMaxBridged = 1 << 16;
  // Diffs busy, write-protected dirty pages and writes the runs home.
  absl::Status WriteBackLocked(const uint64_t* pages, size_t n, bool may_pack = true);
  // Packed diffs of the current write-back: the open message for `home`
  // (sending a full one first), sending, waiting for the replies.
  absl::StatusOr<DiffWriter*> PackedWriter(int home, uint64_t rkey);
  absl::Status SendPacked(int home);
  absl::Status FinishPacked();
  // Frees a written-back page's twin and clears its dirty bit.
  void DropTwin(uint64_t page);
  // Sets `want` (capped per domain) on sorted pages, one call per run.
  absl::Status ProtectRuns(const uint64_t* pages, size_t n, gas::Prot want);
  // Posts scratch_ops_[0, n_ops) as one batch and waits for them all.
  absl::Status FlushOps(size_t n_ops);
  // `prot` capped by the protection domain of `seg` (see SetProtCap).
  gas::Prot Capped(gas::Prot prot, const gas::Segment& seg) const;
  gas::Prot CappedAt(gas::Prot prot, uint64_t page) const;
  [[noreturn]] void Fatal(const char* fmt, ...) const;
  [[noreturn]] void FatalPeer(bool peer_failed, const char* fmt, ...) const;

  gas::GlobalRange* const range_;
  const gas::SegmentTable* const segments_;
  transport::Transport* const transport_;
  const std::vector<HomeInfo> homes_;
  const CoherenceOptions options_;
  const FatalHandler fatal_;
  bool installed_ = false;
  std::atomic<int> prefetch_pages_;
  // Per home: the page after the last run fetched and the window used
  // (sequential detection; relaxed, a heuristic shared by all threads).
  struct SeqState {
    std::atomic<uint64_t> next{~uint64_t{0}};
    std::atomic<uint32_t> window{0};
  };
  std::vector<SeqState> seq_;
  ProtCapFn cap_ = nullptr;
  void* cap_context_ = nullptr;

  // Cache registration: bits per chunk (requested, registered), a word the
  // fault path bumps (signal-safe) to wake the registrar thread.
  void RequestChunk(uint64_t offset);  // signal-safe
  bool ChunkRegistered(uint64_t offset) const;  // signal-safe
  void RegistrarLoop();
  std::vector<std::atomic<uint64_t>> chunk_requested_;
  std::vector<std::atomic<uint64_t>> chunk_registered_;
  std::atomic<uint32_t> chunk_wake_{0};
  std::atomic<bool> chunk_stop_{false};
  std::atomic<bool> chunk_failed_{false};
  std::atomic<uint64_t> registered_chunks_{0};
  std::thread registrar_;

  SparseArray states_mem_;
  std::atomic<uint32_t>* states_ = nullptr;
  PageBitmap dirty_;
  PageBitmap cached_;
  PageBitmap epoch_written_;  // notices since the last barrier
  PageBitmap pending_;        // notices since the last publication
  PageBitmap dropped_;        // cached until an acquire dropped them (prefetch hint)
  PageBitmap reread_;         // fetched again after being dropped: refresh candidates
  uint64_t hot_block_ = 64;  // pages per block (HotBlockPages)
  // Hot blocks: home blocks written again within two notice
  // intervals (takes of either notice set) stay open and have their open
  // home pages noted at every take instead of faulting at every interval;
  // after kHotIntervals they are closed again, to find out whether they
  // are still written. Set from signal context, cleared under sync_mu_.
  PageBitmap hot_blocks_;
  SparseArray block_take_mem_;
  // Per block: the interval of its last home write fault, or of its
  // promotion while hot.
  std::atomic<uint32_t>* block_take_ = nullptr;
  // Per block: (level << 32) | interval of its last demotion. A block
  // promoted again right after a demotion stays hot twice as long next
  // time (kHotIntervals << level, level <= kMaxHotLevel), so data written
  // every interval pays ever fewer faults to check whether it still is.
  SparseArray block_hot_mem_;
  std::atomic<uint64_t>* block_hot_ = nullptr;
  std::atomic<uint32_t> take_interval_{2};
  static constexpr uint32_t kHotIntervals = 16;
  static constexpr uint32_t kMaxHotLevel = 6;
  std::atomic<int64_t> pending_count_{0};  // set bits of pending_ (approximately)
  std::atomic<uint64_t> dirty_count_{0};
  std::atomic<uint64_t> cached_count_{0};  // pages in cached_ (skip empty walks)
  std::atomic<int> page_waiters_{0};       // threads in WaitNotBusy

  // Twins: a fixed arena of max_dirty_pages pages and a free stack.
  SparseArray twin_mem_;
  std::mutex twin_mu_;
  std::vector<uint32_t> twin_free_;  // guarded by twin_mu_; never grows

  // Release/acquire scratch (preallocated: the fault path may release).
  std::mutex sync_mu_;
  std::vector<uint64_t> scratch_pages_;  // guarded by sync_mu_
  std::vector<uint64_t> scratch_dirty_;  // guarded by sync_mu_
  std::vector<uint64_t> scratch_refresh_;  // guarded by sync_mu_
  uint32_t refresh_round_ = 0;            // guarded by sync_mu_
  std::vector<uint64_t> scratch_bridged_;  // guarded by sync_mu_; capacity kMaxBridged
  std::vector<DiffRun> scratch_runs_;    // guarded by sync_mu_
  std::vector<transport::Op> scratch_ops_;  // guarded by sync_mu_
  std::vector<DiffRun> scratch_short_;      // guarded by sync_mu_
  uint8_t scratch_masks_[gas::kPageSize / 8];  // guarded by sync_mu_
  struct PackedOut {
    DiffWriter writer;
    uint64_t rkey = 0;
    bool open = false;
    std::vector<uint64_t> awaiting;  // sequence numbers sent, replies due
  };
  std::vector<PackedOut> packed_;  // per home; guarded by sync_mu_
  uint64_t packed_sequence_ = 0;   // guarded by sync_mu_
  std::unique_ptr<DiffService> diff_service_;
};

}  // namespace consistency
}  // namespace gasp

#endif  // GASP_CONSISTENCY_COHERENCE_H_
