// A C ABI over PyTorch's c10d (the engine under torch.distributed): a store (TCPStore, optionally
// behind torchrun's agent store), one process group (Gloo, or NCCL where built with EVDET_NCCL), and
// the collectives evdet's data-parallel training needs. Tensors cross as `at::Tensor*`, which is what
// a tch `Tensor` holds. No C++ exception crosses this boundary: every entry point catches and returns
// the message as a malloc'ed string (NULL means success), freed with evdet_c10d_free_str.
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef EVDET_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace {

char* dup_message(const std::string& s) {
  char* out = static_cast<char*>(std::malloc(s.size() + 1));
  if (out != nullptr) {
    std::memcpy(out, s.c_str(), s.size() + 1);
  }
  return out;
}

template <typename F>
char* guarded(F&& f) {
  try {
    f();
    return nullptr;
  } catch (const c10::Error& e) {
    return dup_message(e.what_without_backtrace());
  } catch (const std::exception& e) {
    return dup_message(e.what());
  } catch (...) {
    return dup_message("unknown C++ exception in c10d");
  }
}

struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> backend;
  std::chrono::milliseconds timeout;
};

// The group the differentiable all-reduce uses; autograd's backward has no other way to reach it.
// One process holds one group for its whole life, as torch.distributed's default group.
Group* g_autograd_group = nullptr;

void wait(const c10::intrusive_ptr<c10d::Work>& work, std::chrono::milliseconds timeout) {
  work->wait(timeout);
}

void allreduce_sum(Group* g, at::Tensor& t) {
  std::vector<at::Tensor> v{t};
  c10d::AllreduceOptions opts;
  opts.reduceOp = c10d::ReduceOp::SUM;
  opts.timeout = g->timeout;
  wait(g->backend->allreduce(v, opts), g->timeout);
}

// Sum over ranks in the forward pass; in the backward pass the gradient is summed over ranks too,
// because every rank's loss depends on every rank's input through the sum.
struct AllReduceSum : public torch::autograd::Function<AllReduceSum> {
  static at::Tensor forward(torch::autograd::AutogradContext*, const at::Tensor& x) {
    at::Tensor y = x.detach().clone(at::MemoryFormat::Contiguous);
    allreduce_sum(g_autograd_group, y);
    return y;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext*,
                                                 torch::autograd::variable_list grads) {
    at::Tensor g = grads[0].contiguous().clone();
    allreduce_sum(g_autograd_group, g);
    return {g};
  }
};

}  // namespace

extern "C" {

void evdet_c10d_free_str(char* s) { std::free(s); }

void evdet_c10d_free_bytes(uint8_t* p) { std::free(p); }

// backend: "gloo" or "nccl". agent_store: the store at host:port is hosted by someone else (torchrun's
// agent), so this rank is a client even when it is rank 0. prefix namespaces every key.
char* evdet_c10d_new(const char* backend, const char* host, int port, int rank, int world,
                     int agent_store, const char* prefix, int64_t timeout_ms,
                     const char* gloo_ifname, int gloo_threads, Group** out) {
  *out = nullptr;
  return guarded([&] {
    auto timeout = std::chrono::milliseconds(timeout_ms);
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(port);
    so.isServer = (rank == 0) && agent_store == 0;
    so.numWorkers = static_cast<std::size_t>(world);
    so.waitWorkers = true;  // every rank counts itself in; the host waits for all
    so.timeout = timeout;
    auto tcp = c10::make_intrusive<c10d::TCPStore>(std::string(host), so);
    auto store = c10::make_intrusive<c10d::PrefixStore>(std::string(prefix), tcp);
    std::unique_ptr<Group> g(new Group{store, {}, timeout});
    std::string name(backend);
    if (name == "gloo") {
      auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
      if (gloo_ifname != nullptr && gloo_ifname[0] != '\0') {
        opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(gloo_ifname));
      } else {
        opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      }
      opts->threads = gloo_threads > 0 ? gloo_threads : 2;
      g->backend = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world, opts);
    } else if (name == "nccl") {
#ifdef EVDET_NCCL
      auto opts = c10d::ProcessGroupNCCL::Options::create();
      opts->timeout = timeout;
      g->backend = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, world, opts);
#else
      throw std::runtime_error(
          "this evdet was built without NCCL (the CUDA headers were not found at build time); "
          "use hardware.dist_backend=gloo or rebuild after scripts/setup.sh");
#endif
    } else {
      throw std::runtime_error("unknown backend '" + name + "' (gloo or nccl)");
    }
    *out = g.release();
  });
}

int evdet_c10d_has_nccl() {
#ifdef EVDET_NCCL
  return 1;
#else
  return 0;
#endif
}

void evdet_c10d_drop(Group* g) {
  if (g == g_autograd_group) {
    g_autograd_group = nullptr;
  }
  delete g;
}

char* evdet_c10d_allreduce_sum(Group* g, at::Tensor* t) {
  return guarded([&] { allreduce_sum(g, *t); });
}

// One all-reduce over several tensors (a bucket), as DDP's reducer issues them.
char* evdet_c10d_allreduce_coalesced(Group* g, at::Tensor** ts, size_t n) {
  return guarded([&] {
    std::vector<at::Tensor> v;
    v.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      v.push_back(*ts[i]);
    }
    c10d::AllreduceCoalescedOptions opts;
    opts.reduceOp = c10d::ReduceOp::SUM;
    opts.timeout = g->timeout;
    wait(g->backend->allreduce_coalesced(v, opts), g->timeout);
  });
}

char* evdet_c10d_broadcast(Group* g, at::Tensor* t, int root) {
  return guarded([&] {
    std::vector<at::Tensor> v{*t};
    c10d::BroadcastOptions opts;
    opts.rootRank = root;
    opts.timeout = g->timeout;
    wait(g->backend->broadcast(v, opts), g->timeout);
  });
}

char* evdet_c10d_barrier(Group* g) {
  return guarded([&] {
    c10d::BarrierOptions opts;
    opts.timeout = g->timeout;
    wait(g->backend->barrier(opts), g->timeout);
  });
}

// Makes `g` the group of evdet_c10d_allreduce_autograd.
void evdet_c10d_set_autograd_group(Group* g) { g_autograd_group = g; }

char* evdet_c10d_allreduce_autograd(at::Tensor* x, at::Tensor** out) {
  *out = nullptr;
  return guarded([&] {
    if (g_autograd_group == nullptr) {
      throw std::runtime_error("no process group for the differentiable all-reduce");
    }
    *out = new at::Tensor(AllReduceSum::apply(*x));
  });
}

char* evdet_c10d_store_set(Group* g, const char* key, const uint8_t* data, size_t len) {
  return guarded([&] { g->store->set(std::string(key), std::vector<uint8_t>(data, data + len)); });
}

// Blocks until `key` exists (up to the group's timeout).
char* evdet_c10d_store_get(Group* g, const char* key, uint8_t** data, size_t* len) {
  *data = nullptr;
  *len = 0;
  return guarded([&] {
    std::vector<uint8_t> v = g->store->get(std::string(key));
    *data = static_cast<uint8_t*>(std::malloc(v.empty() ? 1 : v.size()));
    if (*data == nullptr) {
      throw std::bad_alloc();
    }
    std::memcpy(*data, v.data(), v.size());
    *len = v.size();
  });
}

char* evdet_c10d_store_add(Group* g, const char* key, int64_t value, int64_t* out) {
  return guarded([&] { *out = g->store->add(std::string(key), value); });
}

}  // extern "C"
