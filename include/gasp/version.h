// The gasp release this header belongs to.
//
// Compatibility: within one major version the public headers (gasp.h,
// gasp_c.h, service.h) only grow, and a program built against an older
// minor release runs with a newer libgasp.so.MAJOR. A new major version
// changes the soname.
#ifndef GASP_VERSION_H_
#define GASP_VERSION_H_

#define GASP_VERSION_MAJOR 1
#define GASP_VERSION_MINOR 0
#define GASP_VERSION_PATCH 0
// One number for #if: 10000 * major + 100 * minor + patch.
#define GASP_VERSION (GASP_VERSION_MAJOR * 10000 + GASP_VERSION_MINOR * 100 + GASP_VERSION_PATCH)

#ifdef __cplusplus
namespace gasp {
// The version of the library the program runs with ("1.0.0"), which may be
// a newer minor release than the header's GASP_VERSION_* say.
const char* Version();
}  // namespace gasp
#endif

#endif  // GASP_VERSION_H_
