#include "rpcgen/global_refs.h"

#include "absl/strings/str_format.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/reflection.h"

namespace gasp {
namespace rpc {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

constexpr char kGlobalRef[] = "gasp.GlobalRef";
constexpr int kMaxDepth = 64;

// Reads a GlobalRef through reflection (the generated class may not be
// linked into every binary that walks messages).
absl::Status AddRef(const Message& m, std::vector<Ref>* refs) {
  const Descriptor* d = m.GetDescriptor();
  const Reflection* r = m.GetReflection();
  const FieldDescriptor* addr = d->FindFieldByName("address");
  const FieldDescriptor* len = d->FindFieldByName("length");
  if (addr == nullptr || len == nullptr) return absl::OkStatus();
  Ref ref{r->GetUInt64(m, addr), r->GetUInt64(m, len)};
  if (ref.length == 0) return absl::OkStatus();
  if (ref.address + ref.length < ref.address) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "GlobalRef {address %#x, length %d} wraps around the address space", ref.address,
        ref.length));
  }
  refs->push_back(ref);
  return absl::OkStatus();
}

absl::Status Walk(const Message& m, std::vector<Ref>* refs, int depth) {
  if (depth > kMaxDepth) {
    return absl::InvalidArgumentError("message nests deeper than 64 levels");
  }
  if (m.GetDescriptor()->full_name() == kGlobalRef) return AddRef(m, refs);
  const Reflection* r = m.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  r->ListFields(m, &fields);  // set fields only, in field-number order
  for (const FieldDescriptor* f : fields) {
    if (f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) continue;
    if (f->is_repeated()) {
      const int n = r->FieldSize(m, f);
      for (int i = 0; i < n; ++i) {
        absl::Status s = Walk(r->GetRepeatedMessage(m, f, i), refs, depth + 1);
        if (!s.ok()) return s;
      }
    } else {
      absl::Status s = Walk(r->GetMessage(m, f), refs, depth + 1);
      if (!s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CollectGlobalRefs(const Message& message, std::vector<Ref>* refs) {
  return Walk(message, refs, 0);
}

}  // namespace rpc
}  // namespace gasp
