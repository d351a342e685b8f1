// The code generator behind protoc-gen-gasp (protoc_gen_gasp.cc is only its
// main). For each x.proto it writes x.gasp.h and x.gasp.cc next to protoc's
// x.pb.h: per service a class holding the Service base the implementation
// derives from and the Stub clients call, both targeting gasp/service.h.
// What exactly is generated is described in rpcgen/README.md.
#ifndef GASP_RPCGEN_GENERATOR_H_
#define GASP_RPCGEN_GENERATOR_H_

#include <cstdint>
#include <string>

#include "google/protobuf/compiler/code_generator.h"
#include "google/protobuf/descriptor.h"

namespace gasp {
namespace rpcgen {

class GaspGenerator : public google::protobuf::compiler::CodeGenerator {
 public:
  // Writes <file>.gasp.h and <file>.gasp.cc into `context`, both even when
  // the file declares no service, so that a build rule can name its outputs
  // from the .proto file names alone.
  //
  // Fails, writing nothing and setting `*error`, when `parameter` is not
  // empty (there are no options), when a method streams ("gasp services
  // support unary methods only: <method>"), or when a service or method name
  // would clash with a generated C++ name (Service, Stub, Bind, ...) or is a
  // C++ keyword.
  bool Generate(const google::protobuf::FileDescriptor* file, const std::string& parameter,
                google::protobuf::compiler::GeneratorContext* context,
                std::string* error) const override;

  // proto3 `optional` fields only matter to message code, which protoc's
  // own C++ generator writes; services using such messages are fine.
  uint64_t GetSupportedFeatures() const override { return FEATURE_PROTO3_OPTIONAL; }
};

}  // namespace rpcgen
}  // namespace gasp

#endif  // GASP_RPCGEN_GENERATOR_H_
