// The verbs backend: RDMA device / port / GID discovery and selection
// (GASP_NET_DEVICES, GASP_IB_GID_INDEX), and the device listing of
// gasp_info -d.
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "transport/verbs_transport.h"
#include "transport/verbs_transport_impl.h"

namespace gasp {
namespace transport {

namespace {

std::string Ipv4String(uint32_t host_order) {
  in_addr a{};
  a.s_addr = htonl(host_order);
  char buf[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &a, buf, sizeof(buf));
  return buf;
}

std::string PortList(const std::vector<std::pair<std::string, int>>& l) {
  std::vector<std::string> out;
  for (const auto& e : l) out.push_back(absl::StrCat(e.first, ":", e.second));
  return absl::StrJoin(out, ", ");
}

// "rxe0 port 1 ACTIVE, rxe1 port 1 DOWN".
std::string FoundList(const std::vector<RdmaPortInfo>& found) {
  std::vector<std::string> out;
  for (const auto& p : found) out.push_back(absl::StrFormat("%s port %d %s", p.device, p.port, p.state));
  return out.empty() ? "none" : absl::StrJoin(out, ", ");
}

// First line of a small (sysfs) file, trimmed; "" when unreadable.
std::string ReadLine(const std::string& path) {
  std::ifstream f(path);
  std::string line;
  if (!f || !std::getline(f, line)) return "";
  return std::string(absl::StripAsciiWhitespace(line));
}

}  // namespace

absl::StatusOr<std::vector<NetDeviceSpec>> ParseNetDevices(const std::string& spec) {
  std::vector<NetDeviceSpec> out;
  for (absl::string_view raw : absl::StrSplit(spec, ',')) {
    absl::string_view e = absl::StripAsciiWhitespace(raw);
    if (e.empty()) continue;
    NetDeviceSpec d;
    const std::string entry(e);
    if (e[0] == '^') {
      d.exclude = true;
      e.remove_prefix(1);
    }
    const size_t colon = e.find(':');
    absl::string_view name = e.substr(0, colon);
    if (name.empty()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "GASP_NET_DEVICES entry '%s' has no device name (expected dev[:port], ^dev to "
          "exclude)",
          entry));
    }
    d.device = std::string(name);
    if (colon != absl::string_view::npos) {
      int port = 0;
      if (!absl::SimpleAtoi(e.substr(colon + 1), &port) || port < 1 || port > 255) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "GASP_NET_DEVICES entry '%s': the port must be a number from 1 to 255", entry));
      }
      d.port = port;
      d.port_given = true;
    }
    out.push_back(d);
  }
  return out;
}

absl::StatusOr<NetDeviceChoice> ChooseNetDevice(const std::string& net_devices,
                                                const std::vector<RdmaPortInfo>& found,
                                                int local_rank) {
  std::vector<NetDeviceSpec> specs;
  {
    absl::StatusOr<std::vector<NetDeviceSpec>> p = ParseNetDevices(net_devices);
    if (!p.ok()) return p.status();
    specs = std::move(*p);
  }
  const std::string setting =
      net_devices.empty() ? "GASP_NET_DEVICES is empty" : absl::StrFormat("GASP_NET_DEVICES='%s'", net_devices);
  auto has_device = [&](const std::string& d) {
    for (const auto& f : found) {
      if (f.device == d) return true;
    }
    return false;
  };
  auto find_port = [&](const std::string& d, int port) -> const RdmaPortInfo* {
    for (const auto& f : found) {
      if (f.device == d && f.port == port) return &f;
    }
    return nullptr;
  };
  for (const auto& s : specs) {
    if (!has_device(s.device)) {
      return absl::NotFoundError(absl::StrFormat(
          "RDMA device '%s' named in GASP_NET_DEVICES='%s' not found; devices: %s", s.device,
          net_devices, FoundList(found)));
    }
    if (s.port_given && find_port(s.device, s.port) == nullptr) {
      return absl::NotFoundError(absl::StrFormat(
          "RDMA device '%s' has no port %d (GASP_NET_DEVICES='%s'); devices: %s", s.device, s.port,
          net_devices, FoundList(found)));
    }
  }
  // Entries in order: the listed ones, or every port found.
  std::vector<const RdmaPortInfo*> listed;
  bool any_include = false;
  for (const auto& s : specs) {
    if (s.exclude) continue;
    any_include = true;
    const RdmaPortInfo* p = find_port(s.device, s.port);
    if (p != nullptr && std::find(listed.begin(), listed.end(), p) == listed.end()) listed.push_back(p);
  }
  if (!any_include) {
    for (const auto& f : found) listed.push_back(&f);
  }
  NetDeviceChoice choice;
  std::vector<std::string> dropped;
  for (const RdmaPortInfo* p : listed) {
    bool excluded = false;
    for (const auto& s : specs) {
      if (s.exclude && s.device == p->device && (!s.port_given || s.port == p->port)) excluded = true;
    }
    if (excluded) continue;
    if (!p->active) {
      dropped.push_back(absl::StrFormat("%s:%d %s", p->device, p->port, p->state));
      continue;
    }
    choice.candidates.emplace_back(p->device, p->port);
  }
  if (choice.candidates.empty()) {
    return absl::UnavailableError(absl::StrFormat(
        "no RDMA device with an ACTIVE port left (%s); devices: %s; fix GASP_NET_DEVICES or use "
        "GASP_TRANSPORT=tcp",
        setting, FoundList(found)));
  }
  const size_t n = choice.candidates.size();
  const size_t idx = local_rank < 0 ? 0 : static_cast<size_t>(local_rank) % n;
  choice.device = choice.candidates[idx].first;
  choice.port = choice.candidates[idx].second;
  choice.reason = absl::StrFormat("%s: active ports %s%s; local rank %d -> entry %d of %d", setting,
                                  PortList(choice.candidates),
                                  dropped.empty() ? "" : absl::StrCat(" (not active: ", absl::StrJoin(dropped, ", "), ")"),
                                  local_rank, idx, n);
  return choice;
}

VerbsOptions VerbsOptionsFrom(const TransportOptions& options) {
  VerbsOptions v;
  v.net_devices = options.net_devices;
  v.local_rank = options.local_rank;
  v.gid_index = options.ib_gid_index;
  v.ib_timeout = options.ib_timeout;
  v.ib_retry_count = options.ib_retry_count;
  return v;
}

namespace verbs {

const char* PortStateName(int s) {
  switch (s) {
    case IBV_PORT_ACTIVE: return "ACTIVE";
    case IBV_PORT_DOWN: return "DOWN";
    case IBV_PORT_INIT: return "INIT";
    case IBV_PORT_ARMED: return "ARMED";
    case IBV_PORT_ACTIVE_DEFER: return "ACTIVE_DEFER";
    default: return "other";
  }
}

int MtuBytes(int mtu) { return mtu >= IBV_MTU_256 && mtu <= IBV_MTU_4096 ? 128 << mtu : 0; }

uint32_t GidIpv4(const ibv_gid& g) {
  static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(g.raw, prefix, 12) != 0) return 0;
  return (uint32_t{g.raw[12]} << 24) | (uint32_t{g.raw[13]} << 16) | (uint32_t{g.raw[14]} << 8) |
         g.raw[15];
}

std::string GidString(const ibv_gid& g) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(AF_INET6, g.raw, buf, sizeof(buf));
  return buf;
}

OpenDevices::OpenDevices() {
  int n = 0;
  errno = 0;
  ibv_device** list = ibv_get_device_list(&n);
  if (list == nullptr) {
    error = errno != 0 ? strerror(errno) : "returned NULL";
    n = 0;
  } else if (n == 0) {
    error = "0 devices";
  }
  for (int i = 0; i < n; ++i) {
    ibv_context* ctx = ibv_open_device(list[i]);
    if (ctx != nullptr) {
      ctxs.push_back(ctx);
    } else if (error.empty()) {
      unopened.push_back(absl::StrFormat("%s (ibv_open_device: %s)", ibv_get_device_name(list[i]),
                                         strerror(errno)));
    }
  }
  if (list != nullptr) ibv_free_device_list(list);
  if (ctxs.empty() && error.empty()) error = absl::StrCat("none could be opened: ", absl::StrJoin(unopened, ", "));
}

OpenDevices::~OpenDevices() {
  if (!keep) {
    for (ibv_context* c : ctxs) ibv_close_device(c);
  }
}

std::vector<RdmaPortInfo> ListPorts(const std::vector<ibv_context*>& ctxs) {
  std::vector<RdmaPortInfo> out;
  for (ibv_context* ctx : ctxs) {
    ibv_device_attr attr{};
    if (ibv_query_device(ctx, &attr) != 0) continue;
    for (int p = 1; p <= attr.phys_port_cnt; ++p) {
      ibv_port_attr pa{};
      RdmaPortInfo info;
      info.device = ibv_get_device_name(ctx->device);
      info.port = p;
      if (ibv_query_port(ctx, static_cast<uint8_t>(p), &pa) == 0) {
        info.active = pa.state == IBV_PORT_ACTIVE;
        info.state = PortStateName(pa.state);
      } else {
        info.state = "unqueryable";
      }
      out.push_back(info);
    }
  }
  return out;
}

namespace {

bool ParseSysfsGid(const std::string& s, ibv_gid* g) {
  std::vector<std::string> parts = absl::StrSplit(s, ':');
  if (parts.size() != 8) return false;
  for (int i = 0; i < 8; ++i) {
    uint32_t v = 0;
    if (parts[i].empty() || parts[i].size() > 4 || !absl::SimpleHexAtoi(parts[i], &v)) return false;
    g->raw[2 * i] = static_cast<uint8_t>(v >> 8);
    g->raw[2 * i + 1] = static_cast<uint8_t>(v);
  }
  return true;
}

bool IsZero(const ibv_gid& g) {
  for (uint8_t b : g.raw) {
    if (b != 0) return false;
  }
  return true;
}

// IPv4 address (host order) of network interface `ifname`, else 0.
uint32_t IfaceIpv4(const std::string& ifname) {
  if (ifname.empty()) return 0;
  ifaddrs* ifa = nullptr;
  if (getifaddrs(&ifa) != 0) return 0;
  uint32_t ip = 0;
  for (ifaddrs* i = ifa; i != nullptr && ip == 0; i = i->ifa_next) {
    if (i->ifa_addr != nullptr && i->ifa_addr->sa_family == AF_INET && ifname == i->ifa_name) {
      ip = ntohl(reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr.s_addr);
    }
  }
  freeifaddrs(ifa);
  return ip;
}

}  // namespace

std::vector<GidInfo> GidTable(ibv_context* ctx, int port) {
  std::vector<GidInfo> out;
  ibv_port_attr pa{};
  if (ibv_query_port(ctx, static_cast<uint8_t>(port), &pa) != 0) return out;
  const std::string dev = ibv_get_device_name(ctx->device);
  const bool ib = pa.link_layer == IBV_LINK_LAYER_INFINIBAND;
  const std::string base = absl::StrFormat("/sys/class/infiniband/%s/ports/%d/", dev, port);
  for (int i = 0; i < pa.gid_tbl_len; ++i) {
    GidInfo e;
    e.index = i;
    const std::string text = ReadLine(absl::StrCat(base, "gids/", i));
    if (text.empty() || !ParseSysfsGid(text, &e.gid)) {
      if (ibv_query_gid(ctx, static_cast<uint8_t>(port), i, &e.gid) != 0) continue;
    }
    if (IsZero(e.gid)) continue;
    const std::string type = ReadLine(absl::StrCat(base, "gid_attrs/types/", i));
    if (ib) {
      e.type = "IB";
    } else if (type == "RoCE v2") {
      e.type = "RoCE v2";
    } else if (!type.empty()) {
      e.type = "RoCE v1";
    } else {
      ibv_gid_entry ge{};
      if (ibv_query_gid_ex(ctx, static_cast<uint32_t>(port), static_cast<uint32_t>(i), &ge, 0) == 0) {
        e.type = ge.gid_type == IBV_GID_TYPE_ROCE_V2 ? "RoCE v2" : ge.gid_type == IBV_GID_TYPE_IB ? "IB" : "RoCE v1";
      } else {
        e.type = "RoCE v1";
      }
    }
    e.ndev = ReadLine(absl::StrCat(base, "gid_attrs/ndevs/", i));
    e.ipv4 = GidIpv4(e.gid);
    out.push_back(e);
  }
  return out;
}

namespace {

// Auto GID: RoCE v2 IPv4, then RoCE v1 IPv4, then (unless ipv4_only) any.
const GidInfo* AutoGid(const std::vector<GidInfo>& t, bool ipv4_only, std::string* why) {
  for (const auto& g : t) {
    if (g.type == "RoCE v2" && g.ipv4 != 0) {
      if (why) *why = "auto: first RoCE v2 GID with an IPv4 address";
      return &g;
    }
  }
  for (const auto& g : t) {
    if (g.type != "RoCE v2" && g.ipv4 != 0) {
      if (why) *why = absl::StrFormat("auto: no RoCE v2 IPv4 GID, first %s IPv4 GID", g.type);
      return &g;
    }
  }
  if (ipv4_only || t.empty()) return nullptr;
  if (why) *why = "auto: no IPv4-mapped GID, first non-zero GID";
  return &t[0];
}

ibv_context* FindCtx(const std::vector<ibv_context*>& ctxs, const std::string& name) {
  for (ibv_context* c : ctxs) {
    if (name == ibv_get_device_name(c->device)) return c;
  }
  return nullptr;
}

}  // namespace

absl::StatusOr<VerbsDeviceSelection> SelectOnContexts(const OpenDevices& devs,
                                                      const VerbsOptions& verbs) {
  if (devs.ctxs.empty()) {
    return absl::UnavailableError(absl::StrFormat(
        "no RDMA device (ibv_get_device_list: %s); use GASP_TRANSPORT=tcp", devs.error));
  }
  const std::vector<RdmaPortInfo> found = ListPorts(devs.ctxs);
  absl::StatusOr<NetDeviceChoice> choice = ChooseNetDevice(verbs.net_devices, found, verbs.local_rank);
  if (!choice.ok()) return choice.status();
  VerbsDeviceSelection sel;
  sel.device = choice->device;
  sel.port = choice->port;
  ibv_context* ctx = FindCtx(devs.ctxs, sel.device);
  ibv_port_attr pa{};
  if (ctx == nullptr || ibv_query_port(ctx, static_cast<uint8_t>(sel.port), &pa) != 0) {
    return absl::InternalError(absl::StrFormat("ibv_query_port(%s, %d) failed", sel.device, sel.port));
  }
  sel.active_mtu = MtuBytes(pa.active_mtu);
  const std::vector<GidInfo> table = GidTable(ctx, sel.port);
  GidInfo chosen;
  std::string gid_why;
  if (verbs.gid_index >= 0) {
    if (verbs.gid_index >= pa.gid_tbl_len) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "GASP_IB_GID_INDEX=%d is out of range for %s port %d: its GID table has %d entries "
          "(0..%d); gasp_info -d lists them, -1 picks one automatically",
          verbs.gid_index, sel.device, sel.port, pa.gid_tbl_len, pa.gid_tbl_len - 1));
    }
    bool have = false;
    for (const auto& g : table) {
      if (g.index == verbs.gid_index) {
        chosen = g;
        have = true;
      }
    }
    if (!have) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "GASP_IB_GID_INDEX=%d: GID %d of %s port %d is empty; gasp_info -d lists the valid "
          "ones, -1 picks one automatically",
          verbs.gid_index, verbs.gid_index, sel.device, sel.port));
    }
    gid_why = absl::StrFormat("GASP_IB_GID_INDEX=%d", verbs.gid_index);
  } else {
    const GidInfo* g = AutoGid(table, false, &gid_why);
    if (g == nullptr) {
      return absl::UnavailableError(absl::StrFormat(
          "%s port %d has no non-zero GID (is its network interface up with an address?)",
          sel.device, sel.port));
    }
    chosen = *g;
  }
  sel.gid_index = chosen.index;
  sel.gid = GidString(chosen.gid);
  sel.gid_type = chosen.type;
  uint32_t ip = chosen.ipv4;
  std::string ip_why = "from the IPv4-mapped GID";
  if (ip == 0) {
    ip = IfaceIpv4(chosen.ndev);
    ip_why = absl::StrFormat("GID is not IPv4-mapped: address of its interface %s", chosen.ndev);
  }
  if (ip == 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "GID %d of %s port %d (%s, %s) is not IPv4-mapped and has no interface with an IPv4 "
        "address; rdma_cm needs one: choose an IPv4 GID with GASP_IB_GID_INDEX (gasp_info -d "
        "lists them)",
        chosen.index, sel.device, sel.port, sel.gid, chosen.type));
  }
  sel.ipv4 = Ipv4String(ip);
  // Source for peers on the same address: another active device's IPv4 GID.
  std::string alt_why;
  for (const auto& cand : choice->candidates) {
    if (cand.first == sel.device) continue;
    ibv_context* other = FindCtx(devs.ctxs, cand.first);
    if (other == nullptr) continue;
    const std::vector<GidInfo> t = GidTable(other, cand.second);
    const GidInfo* g = AutoGid(t, true, nullptr);
    if (g != nullptr && g->ipv4 != ip) {
      sel.alt_ipv4 = Ipv4String(g->ipv4);
      alt_why = absl::StrFormat("; source for peers on the same address: %s (%s:%d GID %d)",
                                sel.alt_ipv4, cand.first, cand.second, g->index);
      break;
    }
  }
  sel.reason = absl::StrFormat("device: %s; GID: %s; IPv4 %s%s", choice->reason, gid_why, ip_why,
                               alt_why);
  return sel;
}

}  // namespace verbs

absl::StatusOr<VerbsDeviceSelection> SelectVerbsDevice(const VerbsOptions& verbs) {
  verbs::OpenDevices devs;
  return verbs::SelectOnContexts(devs, verbs);
}

bool VerbsDeviceAvailable(const std::string& net_devices, std::string* reason) {
  verbs::OpenDevices devs;
  if (devs.ctxs.empty()) {
    if (reason) *reason = absl::StrCat("no RDMA device (ibv_get_device_list: ", devs.error, ")");
    return false;
  }
  absl::StatusOr<NetDeviceChoice> c = ChooseNetDevice(net_devices, verbs::ListPorts(devs.ctxs), 0);
  if (!c.ok()) {
    if (reason) *reason = std::string(c.status().message());
    return false;
  }
  if (reason) *reason = absl::StrCat("RDMA ports available: ", PortList(c->candidates));
  return true;
}

std::string DescribeRdmaDevices() {
  verbs::OpenDevices devs;
  if (devs.ctxs.empty()) {
    return absl::StrCat("no RDMA devices (ibv_get_device_list: ", devs.error, ")\n");
  }
  std::ostringstream out;
  for (ibv_context* ctx : devs.ctxs) {
    const std::string name = ibv_get_device_name(ctx->device);
    const uint64_t guid = be64toh(ibv_get_device_guid(ctx->device));
    ibv_device_attr attr{};
    const bool ok = ibv_query_device(ctx, &attr) == 0;
    out << absl::StrFormat("%s: node GUID %04x:%04x:%04x:%04x, %d port(s)\n", name,
                           (guid >> 48) & 0xffff, (guid >> 32) & 0xffff, (guid >> 16) & 0xffff,
                           guid & 0xffff, ok ? attr.phys_port_cnt : 0);
    for (int p = 1; ok && p <= attr.phys_port_cnt; ++p) {
      ibv_port_attr pa{};
      if (ibv_query_port(ctx, static_cast<uint8_t>(p), &pa) != 0) {
        out << absl::StrFormat("  port %d: ibv_query_port failed: %s\n", p, strerror(errno));
        continue;
      }
      const char* ll = pa.link_layer == IBV_LINK_LAYER_ETHERNET     ? "Ethernet"
                       : pa.link_layer == IBV_LINK_LAYER_INFINIBAND ? "InfiniBand"
                                                                    : "unspecified";
      out << absl::StrFormat("  port %d: %s, link layer %s, active MTU %d (max %d), %d GID entries\n",
                             p, verbs::PortStateName(pa.state), ll, verbs::MtuBytes(pa.active_mtu),
                             verbs::MtuBytes(pa.max_mtu), pa.gid_tbl_len);
      const std::vector<verbs::GidInfo> t = verbs::GidTable(ctx, p);
      if (t.empty()) out << "    no non-zero GID\n";
      for (const auto& g : t) {
        out << absl::StrFormat("    GID %d: %s  %s%s%s\n", g.index, verbs::GidString(g.gid), g.type,
                               g.ipv4 ? absl::StrCat("  IPv4 ", Ipv4String(g.ipv4)) : "",
                               g.ndev.empty() ? "" : absl::StrCat("  (", g.ndev, ")"));
      }
    }
  }
  return out.str();
}

}  // namespace transport
}  // namespace gasp
