"""gasp_libraries: libgasp.a and libgasp.so.MAJOR.MINOR from Bazel targets.

Bazel 4 has no rule that packs a library's transitive closure into one
archive or one shared object, so this rule reads the closure from CcInfo:

  * the static archives of every cc_library in `deps` (gasp's own code and
    generated protobuf code) become one libgasp.a (an `ar` MRI script);
  * the same archives, position independent, are linked whole into
    libgasp.so.MAJOR.MINOR with the soname libgasp.so.MAJOR and `version_script`
    (only the public API is exported), against the system libraries;
  * the system libraries' link flags (pkg-config of Debian's packages, in
    link order) are written to <name>.link_flags for gasp.pc, the CMake
    package and gaspcxx.
"""

def _dedup_last(flags):
    # "-Wl,-rpath" "-Wl,DIR" is one flag.
    joined = []
    for f in flags:
        if joined and joined[-1] == "-Wl,-rpath" and f.startswith("-Wl,"):
            joined[-1] = "-Wl,-rpath," + f[len("-Wl,"):]
        else:
            joined.append(f)
    flags = joined

    # A library must follow its users: keep each flag's last occurrence.
    seen = {}
    out = []
    for f in reversed(flags):
        if f in seen:
            continue
        seen[f] = True
        out.append(f)
    return list(reversed(out))

def _gasp_libraries_impl(ctx):
    archives = []
    pic_archives = []
    flags = []

    # One linking context for all deps, so each library appears once.
    merged = cc_common.merge_cc_infos(cc_infos = [d[CcInfo] for d in ctx.attr.deps])
    for li in merged.linking_context.linker_inputs.to_list():
        flags.extend(li.user_link_flags)
        for lib in li.libraries:
            if lib.static_library:
                archives.append(lib.static_library)
            if lib.pic_static_library:
                pic_archives.append(lib.pic_static_library)
    flags = _dedup_last(flags)

    static = ctx.actions.declare_file("libgasp.a")
    mri = ctx.actions.declare_file("libgasp.mri")
    ctx.actions.write(mri, "\n".join(
        ["create " + static.path] +
        ["addlib " + a.path for a in (archives or pic_archives)] +
        ["save", "end", ""],
    ))
    ctx.actions.run_shell(
        inputs = [mri] + (archives or pic_archives),
        outputs = [static],
        command = "ar -M < {} && ranlib {}".format(mri.path, static.path),
        env = {"PATH": "/usr/bin:/bin"},
        mnemonic = "GaspArchive",
        progress_message = "packing libgasp.a",
    )

    major, minor = ctx.attr.version.split(".")[:2]
    shared = ctx.actions.declare_file("libgasp.so.%s.%s" % (major, minor))
    args = ctx.actions.args()
    args.add_all(["-shared", "-o", shared.path])
    args.add("-Wl,-soname,libgasp.so." + major)
    args.add("-Wl,--version-script=" + ctx.file.version_script.path)
    args.add_all(["-Wl,-z,defs", "-Wl,--as-needed", "-Wl,--whole-archive"])
    args.add_all(pic_archives)
    args.add("-Wl,--no-whole-archive")
    args.add_all(flags)
    ctx.actions.run_shell(
        inputs = pic_archives + [ctx.file.version_script],
        outputs = [shared],
        # By full path: through PATH's /bin (a symlink on merged-/usr Debian)
        # gcc would look for its plugins under /libexec.
        command = "/usr/bin/g++ \"$@\"",
        env = {"PATH": "/usr/bin:/bin"},
        arguments = [args],
        mnemonic = "GaspSharedLibrary",
        progress_message = "linking " + shared.basename,
    )

    link_flags = ctx.actions.declare_file(ctx.label.name + ".link_flags")
    ctx.actions.write(link_flags, " ".join(flags) + "\n")
    outs = [static, shared, link_flags]
    return [DefaultInfo(files = depset(outs), runfiles = ctx.runfiles(files = outs))]

gasp_libraries = rule(
    implementation = _gasp_libraries_impl,
    attrs = {
        "deps": attr.label_list(providers = [CcInfo]),
        "version_script": attr.label(allow_single_file = True, mandatory = True),
        "version": attr.string(mandatory = True),
    },
)

def _gasp_direct_headers_impl(ctx):
    hdrs = ctx.attr.dep[CcInfo].compilation_context.direct_headers
    return [DefaultInfo(files = depset(hdrs), runfiles = ctx.runfiles(files = hdrs))]

# The headers a cc_library (or cc_proto_library) declares itself, as files
# (e.g. the generated .pb.h an install copies).
gasp_direct_headers = rule(
    implementation = _gasp_direct_headers_impl,
    attrs = {"dep": attr.label(providers = [CcInfo])},
)
