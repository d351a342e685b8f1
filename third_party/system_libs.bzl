"""Repository rules that expose Debian-packaged C/C++ libraries to Bazel 4.2.3.

pkg_config(name, modules, extra_linkopts = [], target_name = name)
    -> @<name>//:<target_name>, a cc_library with the flags of
       `pkg-config --cflags --libs <modules>` (no hdrs: everything lives under
       /usr/include, a builtin include dir of the auto-configured GCC toolchain).

system_protobuf(name = "com_google_protobuf")
    -> a stand-in for the upstream protobuf repository, so Bazel's *native*
       proto_library / cc_proto_library work with their default flags
       (--proto_compiler=@com_google_protobuf//:protoc,
        --proto_toolchain_for_cc=@com_google_protobuf//:cc_toolchain):
         :protoc          /usr/bin/protoc
         :protobuf        libprotobuf (pkg-config protobuf)
         :cc_toolchain    proto_lang_toolchain for C++
         :<wkt>_proto     well-known types from /usr/include/google/protobuf
                          (any_proto, empty_proto, timestamp_proto, ...)
"""

def _split(s):
    return [x for x in s.strip().split(" ") if x]

def _pkg_config_flags(rctx, modules, extra_linkopts = []):
    pc = rctx.which("pkg-config")
    if pc == None:
        fail("pkg-config not found: apt-get install pkgconf")
    libs = rctx.execute([pc, "--libs"] + modules)
    if libs.return_code != 0:
        fail("pkg-config --libs %s failed (is the -dev package installed?):\n%s" %
             (" ".join(modules), libs.stderr))
    cflags = rctx.execute([pc, "--cflags"] + modules)
    if cflags.return_code != 0:
        fail("pkg-config --cflags %s failed:\n%s" % (" ".join(modules), cflags.stderr))

    defines = []
    copts = []
    include_dirs = []
    for f in _split(cflags.stdout):
        if f.startswith("-D"):
            defines.append(f[2:])
        elif f.startswith("-I/usr/include"):
            pass  # already a builtin include dir of the GCC toolchain
        elif f.startswith("-I"):
            # Outside the builtin dirs (e.g. pmix2/include): exposed through a
            # symlink in the repository so that `includes` propagates it.
            include_dirs.append(f[2:])
        else:
            copts.append(f)

    # Keep order, drop repeated -l flags (grpc++.pc repeats absl libs a lot).
    seen = {}
    linkopts = []
    for f in _split(libs.stdout) + extra_linkopts:
        if f.startswith("-l") and f in seen:
            continue
        seen[f] = True
        linkopts.append(f)
    return struct(defines = defines, copts = copts, linkopts = linkopts, include_dirs = include_dirs)

def _cc_library_text(name, modules, flags, includes = []):
    return """\
# pkg-config {mods}
cc_library(
    name = "{name}",
    hdrs = glob([{globs}]),
    includes = {includes},
    defines = {defines},
    copts = {copts},
    linkopts = {linkopts},
    visibility = ["//visibility:public"],
)
""".format(
        mods = " ".join(modules),
        name = name,
        globs = ", ".join(['"%s/**"' % i for i in includes]),
        includes = repr(includes),
        defines = repr(flags.defines),
        copts = repr(flags.copts),
        linkopts = repr(flags.linkopts),
    )

def _pkg_config_impl(rctx):
    flags = _pkg_config_flags(rctx, rctx.attr.modules, rctx.attr.extra_linkopts)
    includes = []
    for i, d in enumerate(flags.include_dirs):
        rctx.symlink(d, "include_%d" % i)
        includes.append("include_%d" % i)
    rctx.file("WORKSPACE", 'workspace(name = "%s")\n' % rctx.name)
    rctx.file("BUILD.bazel", _cc_library_text(
        rctx.attr.target_name or rctx.name,
        rctx.attr.modules,
        flags,
        includes,
    ))

pkg_config = repository_rule(
    implementation = _pkg_config_impl,
    attrs = {
        "modules": attr.string_list(mandatory = True),
        "extra_linkopts": attr.string_list(),
        "target_name": attr.string(),
    },
    configure = True,
    local = True,
    environ = ["PKG_CONFIG_PATH", "PKG_CONFIG_LIBDIR"],
)

_WKT_DEPS = {
    "any": [],
    "api": ["source_context", "type"],
    "descriptor": [],
    "duration": [],
    "empty": [],
    "field_mask": [],
    "source_context": [],
    "struct": [],
    "timestamp": [],
    "type": ["any", "source_context"],
    "wrappers": [],
}

def _system_protobuf_impl(rctx):
    protoc = rctx.which("protoc")
    if protoc == None:
        fail("protoc not found: apt-get install protobuf-compiler")
    wkt_dir = rctx.path("/usr/include/google/protobuf")
    if not wkt_dir.get_child("empty.proto").exists:
        fail("/usr/include/google/protobuf/*.proto missing: apt-get install libprotobuf-dev")

    rctx.symlink(wkt_dir, "google/protobuf")
    rctx.file("protoc.sh", "#!/bin/sh\nexec %s \"$@\"\n" % protoc, executable = True)
    flags = _pkg_config_flags(rctx, ["protobuf"])

    wkt = []
    for n, deps in _WKT_DEPS.items():
        wkt.append("""\
proto_library(
    name = "{n}_proto",
    srcs = ["google/protobuf/{n}.proto"],
    deps = {deps},
)
""".format(n = n, deps = repr([":%s_proto" % d for d in deps])))

    rctx.file("WORKSPACE", 'workspace(name = "%s")\n' % rctx.name)
    rctx.file("BUILD.bazel", """\
package(default_visibility = ["//visibility:public"])

sh_binary(
    name = "protoc",
    srcs = ["protoc.sh"],
)

{cclib}
proto_lang_toolchain(
    name = "cc_toolchain",
    command_line = "--cpp_out=$(OUT)",
    runtime = ":protobuf",
    # The well-known types are already compiled into libprotobuf.so.
    blacklisted_protos = [":well_known_protos"],
)

proto_library(
    name = "well_known_protos",
    srcs = {wkt_srcs},
)

{wkt}""".format(
        cclib = _cc_library_text("protobuf", ["protobuf"], flags),
        wkt_srcs = repr(["google/protobuf/%s.proto" % n for n in _WKT_DEPS]),
        wkt = "\n".join(wkt),
    ))

system_protobuf = repository_rule(
    implementation = _system_protobuf_impl,
    configure = True,
    local = True,
    environ = ["PKG_CONFIG_PATH", "PKG_CONFIG_LIBDIR", "PATH"],
)
