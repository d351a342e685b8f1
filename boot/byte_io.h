// Explicit little-endian helpers for the hand-coded parts of the
// coordinator protocol: the frame header and the frozen ERROR payload
// (boot/coordinator_wire.h). Everything else on the control plane is
// protobuf. No struct casting: every field is written and read byte by
// byte, so the layout depends neither on the compiler nor on the host's
// byte order. Internal to boot/.
#ifndef GASP_BOOT_BYTE_IO_H_
#define GASP_BOOT_BYTE_IO_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace gasp {
namespace boot {

// Appends little-endian integers and length-prefixed strings to a string.
class ByteWriter {
 public:
  explicit ByteWriter(std::string* out) : out_(out) {}

  void U16(uint16_t v) { PutUint(v, 2); }
  void U32(uint32_t v) { PutUint(v, 4); }
  // u32 length + bytes.
  void Bytes(absl::string_view s) {
    U32(static_cast<uint32_t>(s.size()));
    out_->append(s.data(), s.size());
  }

 private:
  void PutUint(uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) out_->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }

  std::string* out_;
};

// Reads the same encoding back. Every getter returns false, and leaves the
// reader failed, when the input is too short; nothing is read past the end.
class ByteReader {
 public:
  explicit ByteReader(absl::string_view in) : in_(in) {}

  bool U16(uint16_t* v) { return Get(2, v); }
  bool U32(uint32_t* v) { return Get(4, v); }
  // u32 length + bytes; refuses lengths above `max_len` or beyond the input.
  bool Bytes(size_t max_len, std::string* s) {
    uint32_t n;
    if (!U32(&n)) return false;
    if (n > max_len || n > remaining()) return Fail();
    s->assign(in_.data() + pos_, n);
    pos_ += n;
    return true;
  }

  // Everything read, nothing left over, no failure.
  bool done() const { return !failed_ && pos_ == in_.size(); }

 private:
  size_t remaining() const { return in_.size() - pos_; }
  template <typename T>
  bool Get(int bytes, T* v) {
    if (failed_ || remaining() < static_cast<size_t>(bytes)) return Fail();
    uint64_t r = 0;
    for (int i = 0; i < bytes; ++i) r |= uint64_t{static_cast<uint8_t>(in_[pos_ + i])} << (8 * i);
    pos_ += static_cast<size_t>(bytes);
    *v = static_cast<T>(r);
    return true;
  }
  bool Fail() {
    failed_ = true;
    return false;
  }

  absl::string_view in_;
  size_t pos_ = 0;
  bool failed_ = false;
};

}  // namespace boot
}  // namespace gasp

#endif  // GASP_BOOT_BYTE_IO_H_
