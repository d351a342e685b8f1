// Services side by side in one run (docs/benchmarks.md, "Services"):
//   gasprun -np 2 bazel-opt-bin/benchmarks/service_bench [iterations]
// Rank 0 publishes Bench (state in its own domain); rank 1 is a trusted
// client. Prints one table: the latency of each invocation kind, a
// 10k-node tree passed by reference against the same tree marshaled into
// protobuf over plain gRPC, and AUTO against both fixed paths on a cached
// and an uncached working set. Medians of per-call times.
// Profiling: BENCH_ONLY=tree runs only the tree rows (by reference, changed
// and unchanged, and marshaled), each `iterations` times; BENCH_ONLY=
// tree-changed, tree-unchanged or tree-marshaled only that one.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "benchmarks/plain_tree.grpc.pb.h"
#include "base/stats.h"
#include "benchmarks/service_bench.gasp.h"
#include "consistency/bundle.h"
#include "gasp/gasp.h"
#include "rpcgen/call_credential.h"
#include "gasp/service.h"
#include "runtime/runtime_internal.h"

namespace {

using gasp::bench::Bench;
using gasp::rpc::Path;

struct Root {
  uint64_t* values;
  uint64_t nvalues;
};

struct TreeNode {
  uint64_t key;
  uint64_t value;
  TreeNode* left;
  TreeNode* right;
};

class BenchImpl : public Bench::Service {
 public:
  explicit BenchImpl(uint64_t root) : r_(reinterpret_cast<Root*>(root)) {}
  gasp::Status Get(const gasp::bench::GetRequest& q, gasp::bench::GetReply* a) override {
    a->set_value(r_->values[q.key() % r_->nvalues]);
    return gasp::OkStatus();
  }
  gasp::Status Touch(const gasp::bench::TouchRequest& q, gasp::bench::TouchReply* a) override {
    if (q.buf().length() >= 8) a->set_first(*reinterpret_cast<const uint64_t*>(q.buf().address()));
    return gasp::OkStatus();
  }
  gasp::Status SumTree(const gasp::bench::TreeRequest& q, gasp::bench::TreeReply* a) override {
    std::vector<const TreeNode*> stack;
    stack.reserve(64);
    if (q.root() != 0) stack.push_back(reinterpret_cast<const TreeNode*>(q.root()));
    uint64_t n = 0, sum = 0;
    while (!stack.empty()) {
      const TreeNode* t = stack.back();
      stack.pop_back();
      ++n;
      sum += t->key;
      if (t->left) stack.push_back(t->left);
      if (t->right) stack.push_back(t->right);
    }
    a->set_count(n);
    a->set_key_sum(sum);
    return gasp::OkStatus();
  }
  gasp::Status Sum(const gasp::bench::SumRequest& q, gasp::bench::SumReply* a) override {
    const uint64_t* w = reinterpret_cast<const uint64_t*>(q.buf().address());
    uint64_t s = 0;
    for (uint64_t i = 0; i < q.buf().length() / 8; ++i) s += w[i];
    a->set_sum(s);
    return gasp::OkStatus();
  }

 private:
  Root* r_;
};

GASP_SERVICE_IMPL(Bench, BenchImpl);

// The baseline: a plain gRPC service over the marshaled tree.
class PlainTreeImpl final : public gasp::bench::plain::PlainTree::Service {
 public:
  grpc::Status SumTree(grpc::ServerContext*, const gasp::bench::plain::Tree* t,
                       gasp::bench::plain::TreeSum* a) override {
    std::vector<int> stack;
    if (t->root() >= 0) stack.push_back(t->root());
    uint64_t n = 0, sum = 0;
    while (!stack.empty()) {
      const auto& node = t->nodes(stack.back());
      stack.pop_back();
      ++n;
      sum += node.key();
      if (node.left() >= 0) stack.push_back(node.left());
      if (node.right() >= 0) stack.push_back(node.right());
    }
    a->set_count(n);
    a->set_key_sum(sum);
    return grpc::Status::OK;
  }
};

// Pages sent in full and as diffs by this rank so far.
struct BundleCounters {
  uint64_t full, diffs;
  static BundleCounters Now() {
    return {gasp::StatGet(gasp::Counter::kPagesBundled),
            gasp::StatGet(gasp::Counter::kPagesBundledAsDiffs)};
  }
};

double MedianUs(int iters, const std::function<void()>& before, const std::function<void()>& fn) {
  std::vector<double> t;
  t.reserve(iters);
  for (int i = 0; i < iters; ++i) {
    if (before) before();
    auto a = std::chrono::steady_clock::now();
    fn();
    auto b = std::chrono::steady_clock::now();
    t.push_back(std::chrono::duration<double, std::micro>(b - a).count());
  }
  std::nth_element(t.begin(), t.begin() + t.size() / 2, t.end());
  return t[t.size() / 2];
}

void Row(const std::string& what, double us, const std::string& note = "") {
  std::printf("| %-58s | %10.2f | %s\n", what.c_str(), us, note.c_str());
}

void Check(const gasp::Status& s, const char* what) {
  if (!s.ok()) {
    std::fprintf(stderr, "%s: %s\n", what, s.message().c_str());
    gasp::Abort(1, what);
  }
}

TreeNode* Build(TreeNode* nodes, uint64_t* next, uint64_t lo, uint64_t hi) {
  if (lo >= hi) return nullptr;
  const uint64_t mid = lo + (hi - lo) / 2;
  TreeNode* n = &nodes[(*next)++];
  n->key = mid;
  n->value = mid * 3;
  n->left = Build(nodes, next, lo, mid);
  n->right = Build(nodes, next, mid + 1, hi);
  return n;
}

// Marshals the pointer tree into the plain message (what a plain RPC
// caller has to do), by index.
int Marshal(const TreeNode* t, gasp::bench::plain::Tree* out) {
  if (t == nullptr) return -1;
  const int me = out->nodes_size();
  out->add_nodes();
  const int l = Marshal(t->left, out);
  const int r = Marshal(t->right, out);
  auto* n = out->mutable_nodes(me);
  n->set_key(t->key);
  n->set_value(t->value);
  n->set_left(l);
  n->set_right(r);
  return me;
}

}  // namespace

int main(int argc, char** argv) {
  auto rt = gasp::Init(&argc, &argv);
  if (!rt.ok()) {
    std::fprintf(stderr, "gasp::Init: %s\n", std::string(rt.status().message()).c_str());
    return 1;
  }
  const int me = rt->rank();
  if (rt->size() != 2) {
    std::fprintf(stderr, "service_bench runs with 2 ranks (gasprun -np 2)\n");
    return 1;
  }
  const int iters = argc > 1 ? std::atoi(argv[1]) : 300;
  const char* only_env = std::getenv("BENCH_ONLY");
  const std::string only = only_env != nullptr ? only_env : "";
  if (!only.empty() && only != "tree" && only != "tree-changed" && only != "tree-unchanged" &&
      only != "tree-marshaled") {
    std::fprintf(stderr,
                 "service_bench: BENCH_ONLY=%s: expected tree, tree-changed, tree-unchanged or "
                 "tree-marshaled\n",
                 only.c_str());
    return 1;
  }
  const bool all_rows = only.empty();
  const int tree_iters = all_rows ? iters / 3 + 1 : iters;
  auto tree_row = [&](const char* which) {
    return all_rows || only == "tree" || only == absl::StrCat("tree-", which);
  };
  constexpr uint64_t kValues = 4096;     // 8 pages
  constexpr uint64_t kSumPages = 64;
  constexpr uint64_t kTreeNodes = 10000;

  gasp::Domain domain = gasp::CoNewDomain("bench");
  Root* root = gasp::CoNewArray<Root>(1, gasp::Placement::OnRank(0), domain);
  uint64_t* values = gasp::CoNewArray<uint64_t>(kValues, gasp::Placement::OnRank(0), domain);
  uint64_t* sum_data = gasp::CoNewArray<uint64_t>(kSumPages * 512, gasp::Placement::OnRank(0));
  uint64_t* plain_port = gasp::CoNewArray<uint64_t>(1);
  gasp::CoGrant(domain, 0, gasp::Access::kReadWrite);
  gasp::CoGrant(domain, 1, gasp::Access::kReadWrite);

  std::unique_ptr<grpc::Server> plain_server;
  PlainTreeImpl plain_impl;
  if (me == 0) {
    root->values = values;
    root->nvalues = kValues;
    for (uint64_t i = 0; i < kValues; ++i) values[i] = i * 11;
    for (uint64_t i = 0; i < kSumPages * 512; ++i) sum_data[i] = i;
    gasp::rpc::PublishOptions po;
    po.domain = domain;
    po.trusted_principals.push_back(gasp::rpc::DevPrincipal(1));
    Check(gasp::rpc::Publish<BenchImpl>(reinterpret_cast<uint64_t>(root), po), "publish");
    grpc::ServerBuilder b;
    int port = 0;
    b.AddListeningPort("0.0.0.0:0", grpc::InsecureServerCredentials(), &port);
    b.RegisterService(&plain_impl);
    b.SetMaxReceiveMessageSize(256 << 20);
    plain_server = b.BuildAndStart();
    *plain_port = static_cast<uint64_t>(port);
  }
  gasp::Barrier();
  gasp::Result<Bench::Stub> stub = Bench::Stub::Bind();
  Check(stub.status(), "bind");
  gasp::bench::GetRequest get;
  get.set_key(5);

  if (me == 0) {
    std::printf("service_bench: %d iterations per row, medians (µs), transport %s, protection %s\n",
                iters, gasp::internal::GetTransport()->name().c_str(), gasp::ProtectionBackend());
    std::printf("| %-58s | %10s | %s\n", "call", "median µs", "note");
    std::printf("|%s|%s|%s\n", std::string(60, '-').c_str(), std::string(12, '-').c_str(), "---");
  }
  if (me == 0 && all_rows) {
    BenchImpl local(reinterpret_cast<uint64_t>(root));
    gasp::bench::GetReply r;
    Row("plain C++ call of the implementation (home)", MedianUs(iters, nullptr, [&] { local.Get(get, &r).IgnoreError(); }));
    Row("trusted direct stub (home)", MedianUs(iters, nullptr, [&] { stub->Get(get).IgnoreError(); }));
    stub->binding().ForcePath(Path::kUntrustedGated);
    Row("gated stub (home; the rank holds the domain)",
        MedianUs(iters, nullptr, [&] { stub->Get(get).IgnoreError(); }),
        absl::StrCat(gasp::ProtectionBackend(), "; stub_benchmark has the untrusted gate"));
    std::fflush(stdout);
  }
  gasp::Barrier();
  if (me == 1) {
    std::map<uint64_t, double> changed_call_us;  // bundled pages -> median of the call
    if (all_rows) {
      Row("data shipping, warm (pages cached here)",
          MedianUs(iters, nullptr, [&] { stub->Get(get).IgnoreError(); }));
      Row("data shipping, cold (after an acquire: faults)",
          MedianUs(iters, [] { gasp::Acquire(); }, [&] { stub->Get(get).IgnoreError(); }));
      // Pages homed here, written before each call (so each is sent in
      // full), or left alone (sent as "unchanged": a hash each).
      for (uint64_t pages : {0, 1, 16}) {
        uint64_t* buf =
            pages == 0 ? nullptr : static_cast<uint64_t*>(gasp::Alloc(pages * 4096, 4096));
        for (uint64_t i = 0; i < pages * 512; ++i) buf[i] = i;
        gasp::bench::TouchRequest t;
        t.mutable_buf()->set_address(reinterpret_cast<uint64_t>(buf));
        t.mutable_buf()->set_length(pages * 4096);
        auto change = [&] {
          for (uint64_t i = 0; i < pages; ++i) buf[i * 512] += 1;
        };
        changed_call_us[pages] = MedianUs(iters, change, [&] { stub->Touch(t).IgnoreError(); });
        Row(absl::StrCat("function shipping, ", pages, " bundled page", pages == 1 ? "" : "s",
                         pages ? " (changed)" : ""),
            changed_call_us[pages]);
        if (pages != 0) {
          Row(absl::StrCat("function shipping, ", pages, " bundled page", pages == 1 ? "" : "s",
                           " (unchanged: hashes)"),
              MedianUs(iters, nullptr, [&] { stub->Touch(t).IgnoreError(); }));
        }
      }
    }  // all_rows
    // A 10k-node tree: by reference vs marshaled.
    TreeNode* nodes = static_cast<TreeNode*>(gasp::Alloc(kTreeNodes * sizeof(TreeNode), 4096));
    uint64_t next = 0;
    TreeNode* tree = Build(nodes, &next, 0, kTreeNodes);
    gasp::bench::TreeRequest tr;
    tr.mutable_nodes()->set_address(reinterpret_cast<uint64_t>(nodes));
    tr.mutable_nodes()->set_length(kTreeNodes * sizeof(TreeNode));
    tr.set_root(reinterpret_cast<uint64_t>(tree));
    bool ok = true;
    auto call_tree = [&] {
      auto r = stub->SumTree(tr);
      ok = ok && r.ok() && r->count() == kTreeNodes;
    };
    // Every node's value changes before each call: every page changes (a
    // byte in 32), and goes as a diff against the copy sent last time.
    const BundleCounters c0 = BundleCounters::Now();
    const double by_ref_changed =
        !tree_row("changed") ? 0 : MedianUs(tree_iters, [&] {
          for (uint64_t i = 0; i < kTreeNodes; ++i) nodes[i].value += 1;
        }, call_tree);
    const BundleCounters c1 = BundleCounters::Now();
    const double by_ref = !tree_row("unchanged") ? 0 : MedianUs(tree_iters, nullptr, call_tree);
    auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", *plain_port),
                                       grpc::InsecureChannelCredentials());
    auto plain = gasp::bench::plain::PlainTree::NewStub(channel);
    const double marshaled = !tree_row("marshaled") ? 0 : MedianUs(tree_iters, nullptr, [&] {
      gasp::bench::plain::Tree msg;
      msg.mutable_nodes()->Reserve(kTreeNodes);
      msg.set_root(Marshal(tree, &msg));
      gasp::bench::plain::TreeSum sum;
      grpc::ClientContext ctx;
      grpc::Status s = plain->SumTree(&ctx, msg, &sum);
      ok = ok && s.ok() && sum.count() == kTreeNodes;
    });
    const uint64_t tree_pages = (kTreeNodes * sizeof(TreeNode) + 4095) / 4096;
    Row("10k-node tree by reference, changed since the last call", by_ref_changed,
        absl::StrFormat("%d pages; in %d calls %d went as diffs, %d in full", tree_pages,
                        tree_iters, c1.diffs - c0.diffs, c1.full - c0.full));
    Row("10k-node tree by reference, unchanged since the last call", by_ref,
        absl::StrFormat("%d pages as hashes", tree_pages));
    Row("10k-node tree marshaled into protobuf, plain gRPC", marshaled,
        absl::StrFormat("%.1fx / %.1fx the by-reference calls%s", marshaled / by_ref_changed,
                        marshaled / by_ref, ok ? "" : " (ERRORS)"));
    if (all_rows) {
      // What the job credential of a call without TLS costs (rpcgen/call_credential.h):
      // signing at the caller plus checking at the callee, on requests with
      // the same number of bundled pages as the calls above.
      const std::string secret(32, 's');
      const auto key = absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(secret.data()), 32);
      gasp::rpc::ReplayGuard guard(2);
      uint64_t counter = 0;
      // Bundles of the sizes those calls send: 16 pages with a byte changed
      // each, the tree after value += 1 (diffs), and the tree in full.
      struct Size {
        std::string what;
        uint64_t bytes;
        double call;  // the call it belongs to (0: none measured)
      };
      std::vector<uint8_t> page(4096, 0x11), changed = page;
      changed[0] += 1;
      std::vector<uint8_t> before(tree_pages * 4096), after;
      std::memcpy(before.data(), nodes, kTreeNodes * sizeof(TreeNode));
      after = before;
      TreeNode* after_nodes = reinterpret_cast<TreeNode*>(after.data());
      for (uint64_t i = 0; i < kTreeNodes; ++i) after_nodes[i].value += 1;
      gasp::consistency::BundleWriter w16, wtree, wfull;
      for (uint64_t p = 0; p < 16; ++p) w16.AddDiff(p, page.data(), 1, changed.data(), 2);
      for (uint64_t p = 0; p < tree_pages; ++p) {
        if (!wtree.AddDiff(p, &before[p * 4096], 1, &after[p * 4096], 2)) {
          wtree.Add(p, &after[p * 4096]);
        }
        wfull.Add(p, &after[p * 4096]);
      }
      const std::vector<Size> sizes = {
          {"0 bundled pages", 0, changed_call_us[0]},
          {"16 changed pages (diffs)", w16.Finish().size(), changed_call_us[16]},
          {absl::StrCat("the changed tree (", tree_pages, " diffs)"), wtree.Finish().size(),
           by_ref_changed},
          {absl::StrCat("the tree in full (", tree_pages, " pages)"), wfull.Finish().size(), 0}};
      for (const Size& size : sizes) {
        gasp::rpc::CallRequest req;
        req.set_service("gasp.bench.Bench");
        req.set_method("Touch");
        req.set_request(std::string(24, 'r'));
        req.set_pages(std::string(size.bytes, 'p'));
        req.set_caller_rank(1);
        const double us = MedianUs(iters, nullptr, [&] {
          gasp::rpc::SignCall(key, 0, ++counter, &req);
          ok = ok && gasp::rpc::CheckCallCredential(key, 0, req, &guard).ok();
        });
        Row(absl::StrCat("job credential, sign + check, ", size.what), us,
            absl::StrFormat("%d bytes of bundle; %s%s", size.bytes,
                            size.call > 0 ? absl::StrFormat("%.1f%% of that call above",
                                                            100.0 * us / size.call)
                                          : std::string("no call measured"),
                            ok ? "" : " (ERRORS)"));
      }
      // AUTO on a cached and an uncached working set of 64 pages homed at rank 0.
      gasp::bench::SumRequest sr;
      sr.mutable_buf()->set_address(reinterpret_cast<uint64_t>(sum_data));
      sr.mutable_buf()->set_length(kSumPages * 4096);
      auto run = [&](const char* set, bool cold) {
        std::function<void()> before = cold ? std::function<void()>([] { gasp::Acquire(); })
                                            : std::function<void()>([&] {
                                                volatile uint64_t s = 0;
                                                for (uint64_t i = 0; i < kSumPages * 512; i += 512) {
                                                  s += sum_data[i];
                                                }
                                              });
        stub->binding().ForcePath(Path::kDataShipping);
        const double d = MedianUs(iters / 2 + 1, before, [&] { stub->Sum(sr).IgnoreError(); });
        stub->binding().ForcePath(Path::kFunctionShipping);
        const double f = MedianUs(iters / 2 + 1, before, [&] { stub->Sum(sr).IgnoreError(); });
        stub->binding().ClearForcedPath();
        const gasp::rpc::CallStats s0 = stub->binding().stats();
        const double a = MedianUs(iters, before, [&] { stub->Sum(sr).IgnoreError(); });
        const gasp::rpc::CallStats s1 = stub->binding().stats();
        const uint64_t data = s1.calls[2] - s0.calls[2], fn = s1.calls[3] - s0.calls[3];
        Row(absl::StrCat("Sum 64 pages, ", set, ": data shipping"), d);
        Row(absl::StrCat("Sum 64 pages, ", set, ": function shipping"), f);
        Row(absl::StrCat("Sum 64 pages, ", set, ": AUTO"), a,
            absl::StrFormat("chose data %d%% of %d calls; best fixed path %s",
                            100 * data / (data + fn),
                            data + fn, d < f ? "data" : "function"));
      };
      run("cached", false);
      run("uncached", true);
    }  // all_rows
    std::fflush(stdout);
  }
  gasp::Barrier();
  if (plain_server) plain_server->Shutdown();
  return rt->Finalize();
}
