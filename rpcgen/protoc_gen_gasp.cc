// protoc-gen-gasp: protoc's plugin for gasp services.
//
//   protoc --plugin=protoc-gen-gasp=<this binary> --gasp_out=<dir> -I... x.proto
//
// writes x.gasp.h and x.gasp.cc (rpcgen/generator.h). Build rules use it
// through gasp_service_library (rpcgen/service.bzl).
#include "google/protobuf/compiler/plugin.h"
#include "rpcgen/generator.h"

int main(int argc, char* argv[]) {
  gasp::rpcgen::GaspGenerator generator;
  return google::protobuf::compiler::PluginMain(argc, argv, &generator);
}
