// Ends a trace started by tch's atm_create_for_tracing with ONE output, the tuple of the traced
// tensors: TorchScript methods return a single value, and libtorch's C API (atm_end_tracing)
// registers one graph output per tensor, which saving refuses. Same passes as atm_end_tracing.
#include <torch/csrc/jit/frontend/tracer.h>
#include <torch/csrc/jit/passes/fixup_trace_scope_blocks.h>
#include <torch/csrc/jit/passes/normalize_ops.h>
#include <torch/script.h>

#include <cstring>
#include <string>

static char *copy_message(const char *what) {
  char *out = static_cast<char *>(malloc(strlen(what) + 1));
  if (out) strcpy(out, what);
  return out;
}

extern "C" char *evdet_end_tracing_tuple(void *module, const char *fn_name, void **outputs,
                                        int noutputs) {
  try {
    auto *m = static_cast<torch::jit::script::Module *>(module);
    auto state = torch::jit::tracer::getTracingState();
    if (state == nullptr) return copy_message("not in tracing mode");
    std::vector<torch::jit::Value *> values;
    for (int i = 0; i < noutputs; ++i) {
      values.push_back(state->getOutput(*static_cast<torch::Tensor *>(outputs[i]), i));
    }
    auto *tuple = state->graph->insertNode(state->graph->createTuple(values))->output();
    state->graph->registerOutput(tuple);
    torch::jit::FixupTraceScopeBlocks(state->graph, m);
    torch::jit::NormalizeOps(state->graph);
    torch::jit::tracer::setTracingState(nullptr);
    auto fn = m->_ivalue()->compilation_unit()->create_function(fn_name, state->graph);
    m->type()->addMethod(fn);
    return nullptr;
  } catch (const std::exception &e) {
    torch::jit::tracer::abandon();
    return copy_message(e.what());
  }
}

// Leaves tracing mode after the traced code failed.
extern "C" void evdet_abandon_tracing() {
  if (torch::jit::tracer::isTracing()) torch::jit::tracer::abandon();
}
