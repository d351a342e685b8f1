// Rank 0 builds a binary search tree of 100k nodes in global memory with
// gasp::New; after a barrier every other rank searches it through plain
// pointers: no marshaling, the pointer means the same object everywhere.
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "gasp/gasp.h"

namespace {

struct Node {
  uint64_t key;
  uint64_t value;
  Node* left;
  Node* right;
};

uint64_t ValueOf(uint64_t key) { return key * 2654435761u + 17; }

}  // namespace

int main(int argc, char** argv) {
  auto rt = gasp::Init(&argc, &argv);
  if (!rt.ok()) {
    std::fprintf(stderr, "gasp::Init: %s\n", std::string(rt.status().message()).c_str());
    return 1;
  }
  const int count = argc > 1 ? std::atoi(argv[1]) : 100000;
  Node** root = gasp::CoNewArray<Node*>(1);
  if (rt->rank() == 0) {
    std::mt19937_64 rng(12345);
    for (int i = 0; i < count; ++i) {
      uint64_t key = rng() % (static_cast<uint64_t>(count) * 4);
      Node** at = root;
      while (*at != nullptr && (*at)->key != key) at = key < (*at)->key ? &(*at)->left : &(*at)->right;
      if (*at == nullptr) *at = gasp::New<Node>(Node{key, ValueOf(key), nullptr, nullptr});
    }
  }
  gasp::Barrier();
  // Every rank searches every key the builder inserted, plus misses.
  std::mt19937_64 rng(12345);
  long found = 0, wrong = 0;
  for (int i = 0; i < count; ++i) {
    uint64_t key = rng() % (static_cast<uint64_t>(count) * 4);
    const Node* n = *root;
    while (n != nullptr && n->key != key) n = key < n->key ? n->left : n->right;
    if (n == nullptr || n->value != ValueOf(key)) {
      ++wrong;
    } else {
      ++found;
    }
  }
  const Node* miss = *root;
  const uint64_t absent = static_cast<uint64_t>(count) * 4 + 1;
  while (miss != nullptr && miss->key != absent) miss = absent < miss->key ? miss->left : miss->right;
  const bool ok = wrong == 0 && found == count && miss == nullptr;
  std::printf("rank %d: searched %d keys in the tree at %p: %ld found, %ld wrong: %s\n",
              rt->rank(), count, static_cast<void*>(*root), found, wrong,
              ok ? "verified" : "MISMATCH");
  int rc = rt->Finalize();
  return ok ? rc : 1;
}
