// The name server's state file: every registration, so that they survive
// a restart (gasp_nameserver --state FILE).
//
// Format (little-endian):
//   bytes 0..7    magic "GASPNSST"
//   bytes 8..11   format version (1)
//   bytes 12..15  CRC-32 (IEEE 802.3) of the payload
//   bytes 16..23  payload length
//   bytes 24..    payload: a serialized v1::State (nameserver/state.proto)
// The file is replaced atomically (temporary file, fsync, rename, fsync of
// the directory), so a reader sees the old or the new state, never a mix.
// Loading is strict: any damage is an error naming the file and the
// problem, never a silent fresh start.
#ifndef GASP_NAMESERVER_STATE_FILE_H_
#define GASP_NAMESERVER_STATE_FILE_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nameserver/state.pb.h"

namespace gasp {
namespace nameserver {

inline constexpr uint32_t kStateFormatVersion = 1;

// The file image of `state`.
std::string EncodeState(const v1::State& state);

// The file image around `payload`, serialized v1::State bytes or not:
// EncodeState(s) == FrameState(s.SerializeAsString()). Lets tests and the
// fuzz target reach the checks behind the checksum.
std::string FrameState(absl::string_view payload);

// Parses and checks a file image: header, length, checksum, payload, and
// every record (ValidateRegistration, a non-empty owner, unique names).
// DataLoss saying what is wrong; FailedPrecondition for a format version
// this build does not read.
absl::StatusOr<v1::State> DecodeState(absl::string_view bytes);

// Reads and decodes `path`. NotFound when the file does not exist (a first
// start); every other error names the path.
absl::StatusOr<v1::State> ReadStateFile(const std::string& path);

// Replaces `path` with the image of `state`, atomically and durably (see
// above). On error `path` is unchanged and no temporary file is left.
absl::Status WriteStateFile(const std::string& path, const v1::State& state);

}  // namespace nameserver
}  // namespace gasp

#endif  // GASP_NAMESERVER_STATE_FILE_H_
