// Explicit little-endian encoding helpers for boot/'s wire formats. No
// struct casting anywhere: every field is written and read byte by byte, so
// the formats do not depend on the compiler's layout or the host's byte
// order. Internal to boot/.
#ifndef GASP_BOOT_BYTE_IO_H_
#define GASP_BOOT_BYTE_IO_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "absl/strings/string_view.h"

namespace gasp {
namespace boot {

// Appends little-endian integers and length-prefixed strings to a string.
class ByteWriter {
 public:
  explicit ByteWriter(std::string* out) : out_(out) {}

  // Appends `v` as `bytes` little-endian bytes (1..8).
  void PutUint(uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) out_->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  void U8(uint8_t v) { PutUint(v, 1); }
  void U16(uint16_t v) { PutUint(v, 2); }
  void U32(uint32_t v) { PutUint(v, 4); }
  void U64(uint64_t v) { PutUint(v, 8); }
  void I32(int32_t v) { PutUint(static_cast<uint32_t>(v), 4); }
  void I64(int64_t v) { PutUint(static_cast<uint64_t>(v), 8); }
  // u32 length + bytes.
  void Bytes(absl::string_view s) {
    U32(static_cast<uint32_t>(s.size()));
    out_->append(s.data(), s.size());
  }
  // Exactly `n` bytes: `s` truncated or zero-padded.
  void Fixed(absl::string_view s, size_t n) {
    size_t k = s.size() < n ? s.size() : n;
    out_->append(s.data(), k);
    out_->append(n - k, '\0');
  }

 private:
  std::string* out_;
};

// Reads the same encoding back. Every getter returns false, and leaves the
// reader failed, when the input is too short; nothing is read past the end.
class ByteReader {
 public:
  explicit ByteReader(absl::string_view in) : in_(in) {}

  bool GetUint(int bytes, uint64_t* v) {
    if (failed_ || remaining() < static_cast<size_t>(bytes)) return Fail();
    uint64_t r = 0;
    for (int i = 0; i < bytes; ++i) r |= uint64_t{static_cast<uint8_t>(in_[pos_ + i])} << (8 * i);
    pos_ += static_cast<size_t>(bytes);
    *v = r;
    return true;
  }
  bool U8(uint8_t* v) { return Get(1, v); }
  bool U16(uint16_t* v) { return Get(2, v); }
  bool U32(uint32_t* v) { return Get(4, v); }
  bool U64(uint64_t* v) { return Get(8, v); }
  bool I32(int32_t* v) {
    uint32_t u;
    if (!U32(&u)) return false;
    *v = static_cast<int32_t>(u);
    return true;
  }
  bool I64(int64_t* v) {
    uint64_t u;
    if (!U64(&u)) return false;
    *v = static_cast<int64_t>(u);
    return true;
  }
  // u32 length + bytes; refuses lengths above `max_len` or beyond the input.
  bool Bytes(size_t max_len, std::string* s) {
    uint32_t n;
    if (!U32(&n)) return false;
    if (n > max_len || n > remaining()) return Fail();
    s->assign(in_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  // Exactly `n` raw bytes.
  bool Raw(size_t n, void* out) {
    if (failed_ || remaining() < n) return Fail();
    if (n > 0) std::memcpy(out, in_.data() + pos_, n);
    pos_ += n;
    return true;
  }

  size_t remaining() const { return in_.size() - pos_; }
  bool done() const { return !failed_ && pos_ == in_.size(); }
  bool failed() const { return failed_; }

 private:
  template <typename T>
  bool Get(int bytes, T* v) {
    uint64_t u;
    if (!GetUint(bytes, &u)) return false;
    *v = static_cast<T>(u);
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
