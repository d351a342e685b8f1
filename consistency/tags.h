// Message tags the runtime uses (reserved range 0xB000'0000-0xBFFF'FFFF),
// in one place so that no two protocols share one: a message taken by the
// wrong receiver is lost to the right one.
#ifndef GASP_CONSISTENCY_TAGS_H_
#define GASP_CONSISTENCY_TAGS_H_

#include <cstdint>

namespace gasp {
namespace consistency {

inline constexpr uint32_t kBarrierTag = 0xB0000001;    // barrier rounds (sync.cc)
inline constexpr uint32_t kAllgatherTag = 0xB0000002;  // collective allocation keys (sync.cc)
inline constexpr uint32_t kKeyGrantTag = 0xB0000003;   // domain keys (runtime/domains.cc)
inline constexpr uint32_t kDiffTag = 0xB0000004;       // packed diffs (diff_service.cc)
inline constexpr uint32_t kDiffAckTag = 0xB0000005;    // their replies

}  // namespace consistency
}  // namespace gasp

#endif  // GASP_CONSISTENCY_TAGS_H_
