// A dictionary service in global memory (docs/services.md).
//
//   rank 0     the server: a hash table in its own protection domain,
//              published through the name server
//   rank 1     a trusted client: granted read, looks up by data shipping
//              (the lookup code runs here, the DSM brings the pages)
//   rank 2...  untrusted clients: looks up by data shipping through a call
//              gate into the dictionary's domain
// Every client inserts by function shipping (the call runs at rank 0), rank
// 1 passes a whole pointer-linked tree by reference in one call (its pages
// travel with the call), and Contains (AUTO) returns its results through a
// reference. Each client then checks every value.
//   gasprun -np 3 bazel-bin/examples/dictionary
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>

#include "examples/dictionary.gasp.h"
#include "gasp/gasp.h"
#include "gasp/service.h"

namespace {

using gasp::examples::Dictionary;

struct Node {
  uint64_t key;
  uint64_t value;
  Node* next;
};

// The root object: everything else is reached from here.
struct Table {
  uint64_t nbuckets;
  uint64_t capacity;
  uint64_t used;  // nodes taken (changed at the home, under the lock)
  Node** buckets;
  Node* nodes;
  uint64_t* lock_word;
};

// A caller's tree, passed by reference.
struct TreeNode {
  uint64_t key;
  uint64_t value;
  TreeNode* left;
  TreeNode* right;
};

// The implementation. Lock discipline: writers hold the table's lock (they
// run at the home, by function shipping); readers run in read phases,
// after a barrier, without it.
class DictionaryImpl : public Dictionary::Service {
 public:
  explicit DictionaryImpl(uint64_t root) : t_(reinterpret_cast<Table*>(root)) {}

  gasp::Status Lookup(const gasp::examples::LookupRequest& req,
                      gasp::examples::LookupReply* reply) override {
    const Node* n = Find(req.key());
    reply->set_found(n != nullptr);
    if (n != nullptr) reply->set_value(n->value);
    return gasp::OkStatus();
  }

  gasp::Status Insert(const gasp::examples::InsertRequest& req,
                      gasp::examples::InsertReply* reply) override {
    gasp::GlobalLock lock(t_->lock_word);
    std::lock_guard<gasp::GlobalLock> guard(lock);
    gasp::Result<bool> r = Put(req.key(), req.value());
    if (!r.ok()) return r.status();
    reply->set_replaced(*r);
    return gasp::OkStatus();
  }

  gasp::Status InsertTree(const gasp::examples::InsertTreeRequest& req,
                          gasp::examples::InsertTreeReply* reply) override {
    gasp::GlobalLock lock(t_->lock_word);
    std::lock_guard<gasp::GlobalLock> guard(lock);
    // Iterative walk: the tree may be deep.
    std::vector<const TreeNode*> stack;
    if (req.root() != 0) stack.push_back(reinterpret_cast<const TreeNode*>(req.root()));
    uint64_t inserted = 0, sum = 0;
    while (!stack.empty()) {
      const TreeNode* n = stack.back();
      stack.pop_back();
      const uint64_t a = reinterpret_cast<uint64_t>(n);
      if (a < req.nodes().address() || a + sizeof(TreeNode) > req.nodes().address() + req.nodes().length()) {
        return gasp::Status(gasp::StatusCode::kInvalidArgument, "a tree node lies outside the nodes reference");
      }
      gasp::Result<bool> r = Put(n->key, n->value);
      if (!r.ok()) return r.status();
      ++inserted;
      sum += n->key;
      if (n->left != nullptr) stack.push_back(n->left);
      if (n->right != nullptr) stack.push_back(n->right);
    }
    reply->set_inserted(inserted);
    reply->set_key_sum(sum);
    return gasp::OkStatus();
  }

  gasp::Status Contains(const gasp::examples::ContainsRequest& req,
                        gasp::examples::ContainsReply* reply) override {
    const uint64_t n = req.keys().length() / sizeof(uint64_t);
    if (req.found().length() < n * sizeof(uint64_t)) {
      return gasp::Status(gasp::StatusCode::kInvalidArgument, "found[] is shorter than keys[]");
    }
    const uint64_t* keys = reinterpret_cast<const uint64_t*>(req.keys().address());
    uint64_t* found = reinterpret_cast<uint64_t*>(req.found().address());
    uint64_t present = 0;
    for (uint64_t i = 0; i < n; ++i) {
      found[i] = Find(keys[i]) != nullptr ? 1 : 0;
      present += found[i];
    }
    reply->set_present(present);
    return gasp::OkStatus();
  }

 private:
  const Node* Find(uint64_t key) const {
    for (const Node* n = t_->buckets[key % t_->nbuckets]; n != nullptr; n = n->next) {
      if (n->key == key) return n;
    }
    return nullptr;
  }

  gasp::Result<bool> Put(uint64_t key, uint64_t value) {
    Node** head = &t_->buckets[key % t_->nbuckets];
    for (Node* n = *head; n != nullptr; n = n->next) {
      if (n->key == key) {
        n->value = value;
        return true;
      }
    }
    if (t_->used == t_->capacity) return gasp::Status(gasp::StatusCode::kResourceExhausted, "dictionary full");
    Node* n = &t_->nodes[t_->used++];
    *n = Node{key, value, *head};
    *head = n;
    return false;
  }

  Table* t_;
};

GASP_SERVICE_IMPL(Dictionary, DictionaryImpl);

uint64_t ValueOf(uint64_t key) { return key * 2654435761u + 7; }

// A balanced tree over keys [lo, hi) in nodes[], returns the root.
TreeNode* Build(TreeNode* nodes, uint64_t* next, uint64_t lo, uint64_t hi, uint64_t base) {
  if (lo >= hi) return nullptr;
  const uint64_t mid = lo + (hi - lo) / 2;
  TreeNode* n = &nodes[(*next)++];
  n->key = base + mid;
  n->value = ValueOf(base + mid);
  n->left = Build(nodes, next, lo, mid, base);
  n->right = Build(nodes, next, mid + 1, hi, base);
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  auto rt = gasp::Init(&argc, &argv);
  if (!rt.ok()) {
    std::fprintf(stderr, "gasp::Init: %s\n", std::string(rt.status().message()).c_str());
    return 1;
  }
  const int me = rt->rank(), n = rt->size();
  const uint64_t per_client = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 200;
  const uint64_t tree_nodes = 1000;
  int failures = 0;
  auto fail = [&](const std::string& what) {
    std::fprintf(stderr, "rank %d: FAIL: %s\n", me, what.c_str());
    ++failures;
  };

  // The table: its own domain, homed at rank 0.
  gasp::Domain domain = gasp::CoNewDomain("dictionary");
  const uint64_t capacity = per_client * n + tree_nodes + 16;
  Table* table = gasp::CoNewArray<Table>(1, gasp::Placement::OnRank(0), domain);
  Node** buckets = gasp::CoNewArray<Node*>(1024, gasp::Placement::OnRank(0), domain);
  Node* nodes = gasp::CoNewArray<Node>(capacity, gasp::Placement::OnRank(0), domain);
  gasp::GlobalLock lock = gasp::CoNewLock();
  uint64_t* failed = gasp::CoNewArray<uint64_t>(1);
  gasp::CoGrant(domain, 0, gasp::Access::kReadWrite);
  if (n > 1) gasp::CoGrant(domain, 1, gasp::Access::kRead);
  for (int r = 2; r < n; ++r) gasp::CoGrant(domain, r, gasp::Access::kRead, gasp::Trust::kUntrusted);

  if (me == 0) {
    *table = Table{1024, capacity, 0, buckets, nodes, lock.word()};
    gasp::Release();
    gasp::rpc::PublishOptions po;
    po.domain = domain;
    po.trusted_principals.push_back(gasp::rpc::DevPrincipal(1));
    gasp::Status s = gasp::rpc::Publish<DictionaryImpl>(reinterpret_cast<uint64_t>(table), po);
    if (!s.ok()) {
      std::fprintf(stderr, "publish: %s\n", std::string(s.message()).c_str());
      gasp::Abort(1, "cannot publish the dictionary");
    }
  }
  gasp::Barrier();

  gasp::Result<Dictionary::Stub> stub = Dictionary::Stub::Bind();
  if (!stub.ok()) {
    std::fprintf(stderr, "rank %d: bind: %s\n", me, std::string(stub.status().message()).c_str());
    gasp::Abort(1, "cannot bind the dictionary");
  }
  // Write phase: inserts run at the home (function shipping).
  if (me != 0 || n == 1) {
    for (uint64_t i = 0; i < per_client; ++i) {
      gasp::examples::InsertRequest req;
      req.set_key(uint64_t(me) * 1000000 + i);
      req.set_value(ValueOf(req.key()));
      if (!stub->Insert(req).ok()) fail("insert");
    }
  }
  if (me == 1) {
    // One call passes a 1000-node tree by reference.
    TreeNode* tree = static_cast<TreeNode*>(gasp::Alloc(tree_nodes * sizeof(TreeNode), 4096));
    uint64_t next = 0;
    TreeNode* root = Build(tree, &next, 0, tree_nodes, 900000000);
    gasp::examples::InsertTreeRequest req;
    req.mutable_nodes()->set_address(reinterpret_cast<uint64_t>(tree));
    req.mutable_nodes()->set_length(tree_nodes * sizeof(TreeNode));
    req.set_root(reinterpret_cast<uint64_t>(root));
    gasp::Result<gasp::examples::InsertTreeReply> r = stub->InsertTree(req);
    const uint64_t want_sum = tree_nodes * 900000000ull + tree_nodes * (tree_nodes - 1) / 2;
    if (!r.ok() || r->inserted() != tree_nodes || r->key_sum() != want_sum) {
      fail("InsertTree: " + (r.ok() ? std::to_string(r->inserted()) + " nodes"
                                 : std::string(r.status().message())));
    } else {
      std::printf("rank 1: InsertTree passed a %lu-node tree by reference in one call (%lu pages "
                  "bundled)\n",
                  (unsigned long)tree_nodes, (unsigned long)stub->binding().stats().pages_bundled);
    }
  }
  gasp::Barrier();

  // Read phase: every client checks every key.
  if (me != 0 || n == 1) {
    uint64_t wrong = 0;
    for (int c = (n == 1 ? 0 : 1); c < n; ++c) {
      for (uint64_t i = 0; i < per_client; ++i) {
        gasp::examples::LookupRequest req;
        req.set_key(uint64_t(c) * 1000000 + i);
        gasp::Result<gasp::examples::LookupReply> r = stub->Lookup(req);
        if (!r.ok() || !r->found() || r->value() != ValueOf(req.key())) ++wrong;
      }
    }
    if (n > 1) {
      for (uint64_t k = 0; k < tree_nodes; k += 97) {
        gasp::examples::LookupRequest req;
        req.set_key(900000000 + k);
        gasp::Result<gasp::examples::LookupReply> r = stub->Lookup(req);
        if (!r.ok() || !r->found() || r->value() != ValueOf(req.key())) ++wrong;
      }
    }
    if (wrong != 0) fail(std::to_string(wrong) + " lookups wrong");
    // Contains (AUTO): results come back through a reference.
    const uint64_t k = 64;
    uint64_t* keys = static_cast<uint64_t*>(gasp::Alloc(k * 8, 4096));
    uint64_t* found = static_cast<uint64_t*>(gasp::Alloc(k * 8, 4096));
    for (uint64_t i = 0; i < k; ++i) keys[i] = i % 2 == 0 ? uint64_t(me) * 1000000 + i : 777777777 + i;
    gasp::examples::ContainsRequest creq;
    creq.mutable_keys()->set_address(reinterpret_cast<uint64_t>(keys));
    creq.mutable_keys()->set_length(k * 8);
    creq.mutable_found()->set_address(reinterpret_cast<uint64_t>(found));
    creq.mutable_found()->set_length(k * 8);
    gasp::Result<gasp::examples::ContainsReply> cr = stub->Contains(creq);
    uint64_t marked = 0;
    for (uint64_t i = 0; i < k; ++i) marked += found[i] == (i % 2 == 0 && i < per_client ? 1u : 0u) ? 1 : 0;
    if (!cr.ok() || marked != k) fail("Contains results through the reference");
    const gasp::rpc::CallStats st = stub->binding().stats();
    std::printf("rank %d (%s): %lu lookups right; calls: %lu direct, %lu gated, %lu data-shipped, "
                "%lu function-shipped\n",
                me, me == 1 ? "trusted" : "untrusted",
                (unsigned long)((n - 1) * per_client), (unsigned long)st.calls[0],
                (unsigned long)st.calls[1], (unsigned long)st.calls[2], (unsigned long)st.calls[3]);
    if (n > 1 && (st.calls[2] == 0 || st.calls[3] == 0)) fail("both data and function shipping expected");
  }
  gasp::AtomicFetchAdd(failed, static_cast<uint64_t>(failures));
  gasp::Barrier();
  if (me == 0) {
    const uint64_t all = gasp::AtomicLoad(failed);
    std::printf("dictionary: %d clients, all values checked [%s]: %s\n", n - 1,
                gasp::ProtectionBackend(), all == 0 ? "verified" : "FAILED");
  }
  const int rc = rt->Finalize();
  return failures == 0 ? rc : 1;
}
