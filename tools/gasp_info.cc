// gasp_info: version, settings and transports of this gasp build.
//
//   gasp_info            version, transports, launch environment
//   gasp_info -c         every GASP_* setting with its effective value and doc
//   gasp_info -d         RDMA devices: ports, state, link layer, MTU, GID table
//   gasp_info --markdown the settings reference (docs/settings.md)
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "absl/strings/str_format.h"
#include "base/settings.h"
#include "transport/factory.h"
#include "transport/verbs_transport.h"

namespace {

constexpr char kVersion[] = "0.1.0";

int Usage() {
  std::fprintf(stderr, "usage: gasp_info [-c | --config] [-d | --devices] [--markdown] [--version]\n"
               "  -c  every GASP_* setting with its effective value\n"
               "  -d  RDMA devices: ports, state, link layer, MTU, non-zero GIDs (for\n"
               "      GASP_NET_DEVICES and GASP_IB_GID_INDEX)\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  bool config = false, markdown = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "-c") || !std::strcmp(argv[i], "--config")) {
      config = true;
    } else if (!std::strcmp(argv[i], "-d") || !std::strcmp(argv[i], "--devices")) {
      std::fputs(gasp::transport::DescribeRdmaDevices().c_str(), stdout);
      return 0;
    } else if (!std::strcmp(argv[i], "--markdown")) {
      markdown = true;
    } else if (!std::strcmp(argv[i], "--version")) {
      std::printf("gasp %s\n", kVersion);
      return 0;
    } else {
      return Usage();
    }
  }
  if (markdown) {
    std::fputs(gasp::SettingsMarkdown().c_str(), stdout);
    return 0;
  }
  absl::StatusOr<gasp::Config> c = gasp::LoadConfigFromEnv();
  if (!c.ok()) {
    std::fprintf(stderr, "gasp_info: %s\n", std::string(c.status().message()).c_str());
    return 1;
  }
  if (config) {
    for (const gasp::SettingSpec& s : gasp::AllSettings()) {
      const bool from_env = std::getenv(s.name) != nullptr;
      std::printf("%s=%s%s\n    %s\n", s.name, gasp::FormatSetting(*c, s).c_str(),
                  from_env ? "   (from the environment)" : "", s.doc);
    }
    return 0;
  }
  char host[256] = "?";
  gethostname(host, sizeof(host) - 1);
  std::printf("gasp %s on %s\n", kVersion, host);
  std::printf("transports:\n");
  for (const std::string& t : gasp::transport::AvailableTransports()) std::printf("  %s\n", t.c_str());
  std::printf("GASP_TRANSPORT=%s\n", c->transport.c_str());
  std::printf("global range: GASP_BASE=%#lx GASP_SIZE=%lu\n", static_cast<unsigned long>(c->base),
              static_cast<unsigned long>(c->size_bytes));
  const char* launch[] = {"GASP_RANK",   "OMPI_COMM_WORLD_RANK", "PMIX_NAMESPACE",
                          "SLURM_PROCID", "PMI_RANK",            "GASP_COORDINATOR"};
  std::printf("launch environment:");
  bool any = false;
  for (const char* v : launch) {
    if (std::getenv(v) != nullptr) {
      std::printf(" %s=%s", v, std::getenv(v));
      any = true;
    }
  }
  std::printf("%s\n", any ? "" : " none (a single rank; use gasprun, mpirun or srun)");
  return 0;
}
