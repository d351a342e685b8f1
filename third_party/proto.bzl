"""C++ protobuf/gRPC code generation with Debian's /usr/bin/protoc and grpc_cpp_plugin.

FALLBACK ONLY. The preferred path is native proto_library + cc_proto_library
(served by the system_protobuf stand-in for @com_google_protobuf) plus
cc_grpc_library from //third_party:grpc.bzl. This macro needs neither: it is a
plain genrule + cc_library.

    cc_proto_grpc_library(
        name = "kv_cc_grpc",
        src = "kv.proto",            # one .proto in this package
        proto_deps = ["//x:y.proto"], # other .proto files it imports (if any)
        deps = [":y_cc_proto"],       # their generated cc libraries
        grpc = True,                  # also run grpc_cpp_plugin
    )

Imports are resolved relative to the workspace root (import "dsm/proto/y.proto";)
and /usr/include (import "google/protobuf/empty.proto";).
"""

PROTOC = "/usr/bin/protoc"
GRPC_CPP_PLUGIN = "/usr/bin/grpc_cpp_plugin"

def cc_proto_grpc_library(name, src, proto_deps = [], deps = [], grpc = False, visibility = None, **kwargs):
    if not src.endswith(".proto"):
        fail("src must be a .proto file")
    base = src[:-len(".proto")]
    hdrs = [base + ".pb.h"]
    srcs = [base + ".pb.cc"]
    if grpc:
        hdrs.append(base + ".grpc.pb.h")
        srcs.append(base + ".grpc.pb.cc")

    cmd = [PROTOC, "-I.", "-I/usr/include", "--cpp_out=$(BINDIR)"]
    if grpc:
        cmd += ["--plugin=protoc-gen-grpc=" + GRPC_CPP_PLUGIN, "--grpc_out=$(BINDIR)"]
    cmd.append("$(location %s)" % src)

    native.genrule(
        name = name + "_codegen",
        srcs = [src] + proto_deps,
        outs = hdrs + srcs,
        cmd = " ".join(cmd),
        message = "protoc " + src,
    )

    lib_deps = ["@com_google_protobuf//:protobuf"] + deps
    if grpc:
        lib_deps.append("@grpcpp")
    native.cc_library(
        name = name,
        srcs = srcs,
        hdrs = hdrs,
        deps = lib_deps,
        visibility = visibility,
        **kwargs
    )
