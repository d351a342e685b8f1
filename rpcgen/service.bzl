"""gasp_service_library: a gasp service from its .proto files, in one BUILD line.

    load("//rpcgen:service.bzl", "gasp_service_library")

    gasp_service_library(
        name = "dictionary_service",
        srcs = ["dictionary.proto"],   # .proto files of this package
        deps = ["//x:y_proto"],        # proto_library targets they import (optional)
    )

creates
    dictionary_service_proto     proto_library (srcs; deps + //rpcgen:options_proto)
    dictionary_service_cc_proto  cc_proto_library: #include "<pkg>/dictionary.pb.h"
    dictionary_service_codegen   protoc with protoc-gen-gasp: <pkg>/dictionary.gasp.{h,cc}
    dictionary_service           cc_library of the generated code:
                                 #include "<pkg>/dictionary.gasp.h"

The .proto files import each other and other packages' files by their
workspace-relative path ("examples/dictionary.proto") and the options as
"gasp/options.proto". protoc-gen-gasp is built from //rpcgen, so the macro
works from any package of this workspace.
"""

def _import_path(src, root):
    p = src.path
    if root and root != "." and p.startswith(root + "/"):
        p = p[len(root) + 1:]
    return p

def _gasp_codegen_impl(ctx):
    info = ctx.attr.proto[ProtoInfo]
    root = info.proto_source_root
    hdrs = []
    srcs = []
    out_root = None
    for src in info.direct_sources:
        stem = _import_path(src, root)[:-len(".proto")]
        base = src.basename[:-len(".proto")]
        h = ctx.actions.declare_file(base + ".gasp.h")
        cc = ctx.actions.declare_file(base + ".gasp.cc")

        # protoc names its outputs by import path, Bazel by package: they
        # agree only when the .proto sits in this package, unprefixed.
        if not h.path.endswith("/" + stem + ".gasp.h"):
            fail("gasp_service_library: %s must be in the package of %s" % (src.path, ctx.label))
        out_root = h.path[:-len("/" + stem + ".gasp.h")]
        hdrs.append(h)
        srcs.append(cc)

    args = ctx.actions.args()
    args.add("--plugin=protoc-gen-gasp=" + ctx.executable._plugin.path)
    args.add("--gasp_out=" + out_root)
    args.add_all(info.transitive_proto_path, format_each = "-I%s")
    args.add("-I.")
    args.add_all([_import_path(s, root) for s in info.direct_sources])

    ctx.actions.run(
        executable = ctx.executable._protoc,
        arguments = [args],
        inputs = info.transitive_sources,
        tools = [ctx.attr._plugin[DefaultInfo].files_to_run],
        outputs = hdrs + srcs,
        mnemonic = "GaspCodegen",
        progress_message = "protoc-gen-gasp %s" % ctx.label,
    )
    return [
        DefaultInfo(files = depset(hdrs + srcs)),
        OutputGroupInfo(hdrs = depset(hdrs), srcs = depset(srcs)),
    ]

_gasp_codegen = rule(
    implementation = _gasp_codegen_impl,
    attrs = {
        "proto": attr.label(providers = [ProtoInfo], mandatory = True),
        "_protoc": attr.label(
            default = "@com_google_protobuf//:protoc",
            executable = True,
            cfg = "host",
        ),
        "_plugin": attr.label(
            default = Label("//rpcgen:protoc-gen-gasp"),
            executable = True,
            cfg = "host",
        ),
    },
)

def gasp_service_library(name, srcs, deps = [], visibility = None):
    """The proto, C++ proto and generated service libraries of `srcs` (see above).

    Args:
      name: the cc_library to link; the other targets are named after it.
      srcs: .proto files in this package.
      deps: proto_library targets that `srcs` import (besides gasp/options.proto).
      visibility: of all the targets created.
    """
    native.proto_library(
        name = name + "_proto",
        srcs = srcs,
        deps = [Label("//rpcgen:options_proto")] + deps,
        visibility = visibility,
    )
    native.cc_proto_library(
        name = name + "_cc_proto",
        deps = [":" + name + "_proto"],
        visibility = visibility,
    )
    _gasp_codegen(
        name = name + "_codegen",
        proto = ":" + name + "_proto",
        visibility = ["//visibility:private"],
    )
    native.filegroup(
        name = name + "_gasp_hdrs",
        srcs = [":" + name + "_codegen"],
        output_group = "hdrs",
        visibility = ["//visibility:private"],
    )
    native.filegroup(
        name = name + "_gasp_srcs",
        srcs = [":" + name + "_codegen"],
        output_group = "srcs",
        visibility = ["//visibility:private"],
    )
    native.cc_library(
        name = name,
        srcs = [":" + name + "_gasp_srcs"],
        hdrs = [":" + name + "_gasp_hdrs"],
        deps = [
            ":" + name + "_cc_proto",
            Label("//rpcgen:service"),
            "@absl",
            "@com_google_protobuf//:protobuf",
        ],
        visibility = visibility,
    )
