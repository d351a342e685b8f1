"""cc_grpc_library on top of Bazel's native proto_library, using Debian's grpc_cpp_plugin.

Uses @com_google_protobuf (the system_protobuf stand-in) for protoc.

Usage (same package as the proto_library, no strip_import_prefix):
    proto_library(name = "foo_proto", srcs = ["foo.proto"], deps = [...])
    cc_proto_library(name = "foo_cc_proto", deps = [":foo_proto"])
    cc_grpc_library(name = "foo_cc_grpc", srcs = [":foo_proto"], deps = [":foo_cc_proto"])
"""

GRPC_CPP_PLUGIN = "/usr/bin/grpc_cpp_plugin"

def _import_path(src, root):
    p = src.path
    if root and root != "." and p.startswith(root + "/"):
        p = p[len(root) + 1:]
    return p

def _grpc_codegen_impl(ctx):
    info = ctx.attr.proto[ProtoInfo]
    root = info.proto_source_root
    outs = []
    hdrs = []
    srcs = []
    out_root = None
    for src in info.direct_sources:
        ip = _import_path(src, root)
        stem = ip[:-len(".proto")]
        base = src.basename[:-len(".proto")]
        h = ctx.actions.declare_file(base + ".grpc.pb.h")
        cc = ctx.actions.declare_file(base + ".grpc.pb.cc")
        if not h.path.endswith(stem + ".grpc.pb.h"):
            fail("cc_grpc_library must be in the same package as %s (no import prefix stripping)" % src.path)
        out_root = h.path[:-len(stem + ".grpc.pb.h")].rstrip("/") or "."
        outs += [h, cc]
        hdrs.append(h)
        srcs.append(cc)

    args = ctx.actions.args()
    args.add("--plugin=protoc-gen-grpc=" + GRPC_CPP_PLUGIN)
    args.add("--grpc_out=" + out_root)
    args.add_all(info.transitive_proto_path, format_each = "-I%s")
    args.add("-I.")
    args.add_all([_import_path(s, root) for s in info.direct_sources])

    ctx.actions.run(
        executable = ctx.executable._protoc,
        arguments = [args],
        inputs = info.transitive_sources,
        outputs = outs,
        mnemonic = "GrpcCppCodegen",
        progress_message = "grpc_cpp_plugin %s" % ctx.label,
    )
    return [
        DefaultInfo(files = depset(outs)),
        OutputGroupInfo(hdrs = depset(hdrs), srcs = depset(srcs)),
    ]

_grpc_codegen = rule(
    implementation = _grpc_codegen_impl,
    attrs = {
        "proto": attr.label(providers = [ProtoInfo], mandatory = True),
        "_protoc": attr.label(
            default = "@com_google_protobuf//:protoc",
            executable = True,
            cfg = "host",
        ),
    },
)

def cc_grpc_library(name, srcs, deps, grpc_only = True, visibility = None, **kwargs):
    """Same call shape as upstream @com_github_grpc_grpc//bazel:cc_grpc_library.bzl (grpc_only = True)."""
    if not grpc_only:
        fail("only grpc_only = True is supported; add a cc_proto_library yourself")
    if len(srcs) != 1:
        fail("srcs must be exactly one proto_library")
    _grpc_codegen(name = name + "_codegen", proto = srcs[0])
    native.filegroup(name = name + "_hdrs", srcs = [":" + name + "_codegen"], output_group = "hdrs")
    native.filegroup(name = name + "_srcs", srcs = [":" + name + "_codegen"], output_group = "srcs")
    native.cc_library(
        name = name,
        srcs = [":" + name + "_srcs"],
        hdrs = [":" + name + "_hdrs"],
        deps = deps + ["@grpcpp", "@com_google_protobuf//:protobuf"],
        visibility = visibility,
        **kwargs
    )
