// Waiting policy shared by every layer that waits for a peer: spin a little,
// then block, as configured by GASP_WAIT_MODE / GASP_SPIN_US. Four ranks on
// two cores must not burn each other's cycles; dedicated cores may poll.
#ifndef GASP_BASE_WAIT_H_
#define GASP_BASE_WAIT_H_

#include <atomic>
#include <cstdint>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace gasp {

enum class WaitMode { kAdaptive, kPoll, kBlock };

// Process-wide policy (set once at init).
void SetWaitPolicy(WaitMode mode, int64_t spin_us);
WaitMode GetWaitMode();
int64_t GetSpinMicros();

// Futex-based wait until `*word != value` or the deadline passes. Spins
// according to the policy first. Async-signal-safe. Returns false on
// timeout.
bool WaitWhileEqual(const std::atomic<uint32_t>* word, uint32_t value, absl::Time deadline);

// Like WaitWhileEqual without the spin: sleeps (futex) until `*word !=
// value`, a WakeAll, or the deadline. Returns false on timeout.
// Async-signal-safe.
bool BlockWhileEqual(const std::atomic<uint32_t>* word, uint32_t value, absl::Time deadline);

// Wakes every waiter of `word` (async-signal-safe).
void WakeAll(const std::atomic<uint32_t>* word);

// Relax the CPU in a spin loop.
inline void CpuRelax() { __builtin_ia32_pause(); }

}  // namespace gasp

#endif  // GASP_BASE_WAIT_H_
