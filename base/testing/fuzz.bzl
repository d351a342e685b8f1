"""gasp_fuzz_target: one libFuzzer-style target, two ways to run it.

    load("//base/testing:fuzz.bzl", "gasp_fuzz_target")

    gasp_fuzz_target(
        name = "tcp_wire",
        srcs = ["tcp_wire_fuzzer.cc"],
        deps = [":tcp_wire"],
    )

defines

  <name>_fuzz_test  cc_test: the target on the standalone driver
                    (//base/testing:fuzz_driver_main): seeds from
                    GaspFuzzSeeds + GASP_FUZZ_ITERATIONS reproducible
                    mutations. Part of the normal test suite.
  <name>_fuzzer     cc_binary: under --config=fuzz (config_setting
                    //base/testing:libfuzzer) a libFuzzer binary
                    (-fsanitize=fuzzer); otherwise the standalone driver,
                    which replays files/directories given as arguments.

srcs must define extern "C" LLVMFuzzerTestOneInput and may define
extern "C" GaspFuzzSeeds(void (*add)(void*, const uint8_t*, size_t), void*).
"""

_DRIVER = "//base/testing:fuzz_driver_main"
_LIBFUZZER = "//base/testing:libfuzzer"

def gasp_fuzz_target(name, srcs, deps = [], size = "small", **kwargs):
    """Defines <name>_fuzz_test and <name>_fuzzer.

    Args:
      name: base name; the targets are <name>_fuzz_test and <name>_fuzzer.
      srcs: sources defining LLVMFuzzerTestOneInput (and GaspFuzzSeeds).
      deps: libraries under test.
      size: size of the cc_test.
      **kwargs: passed to both rules (e.g. visibility, tags, copts).
    """
    native.cc_test(
        name = name + "_fuzz_test",
        size = size,
        srcs = srcs,
        deps = deps + [_DRIVER],
        **kwargs
    )

    native.cc_binary(
        name = name + "_fuzzer",
        testonly = True,
        srcs = srcs,
        linkopts = select({
            # Bazel links with the C driver (clang, not clang++): ask for the
            # UBSan C++ runtime too.
            _LIBFUZZER: [
                "-fsanitize=fuzzer",
                "-fsanitize-link-c++-runtime",
            ],
            "//conditions:default": [],
        }),
        deps = deps + select({
            _LIBFUZZER: [],
            "//conditions:default": [_DRIVER],
        }),
        **kwargs
    )
