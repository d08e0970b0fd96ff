// Stride-1 temporal convolution over frames on CPU, by oneDNN, as XLA FFI handlers.
//
// Layouts are those of smg_jax.models.blocks (channels last):
//   x  (N, T, C)   N sequences (clips x joints), T frames, C input channels
//   w  (K, C, O)   K taps
//   y  (N, T', O)  T' = floor((T + 2 pad - dilation (K - 1) - 1) / stride) + 1
// Three handlers: forward (x, w -> y), input gradient (dy, w -> dx) and
// kernel gradient (x, dy -> dw). Attributes: stride, pad (frames on each
// side) and dilation (1 = contiguous taps), as PyTorch's Conv1d takes them.
//
// oneDNN picks its own blocked layout for the kernel ("any"); the kernel is
// reordered into it, and the kernel gradient out of it, on every call (at most
// 9 x 384 x 384 floats, small beside the activations). Primitives are built
// once per shape and kept for the life of the process.
//
// Threads: this oneDNN is built for OpenMP, whose own team of threads would
// compete for the cores with XLA's thread pool, which keeps running other
// parts of the program beside a convolution (inside 2s-AGCN on 2 cores the
// convolutions then took 1.6x their time alone). So every oneDNN call here
// runs on one thread, and a convolution is split over its sequences into
// chunks that XLA's own intra-op thread pool runs: the calling thread and any
// pool thread that is free take the next chunk until none is left. The kernel
// gradient sums one partial gradient per chunk.

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <vector>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>

#include <omp.h>

#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

using Tag = dnnl::memory::format_tag;
using Dt = dnnl::memory::data_type;

struct Shape {
  int64_t n, t, c, o, k, stride, pad, dilation;
  int64_t out_frames() const {
    const int64_t span = t + 2 * pad - dilation * (k - 1) - 1;
    return span < 0 ? 0 : span / stride + 1;
  }
  auto key() const { return std::make_tuple(n, t, c, o, k, stride, pad, dilation); }
  std::string text() const {
    return "N=" + std::to_string(n) + " T=" + std::to_string(t) + " C=" + std::to_string(c) +
           " O=" + std::to_string(o) + " K=" + std::to_string(k) +
           " stride=" + std::to_string(stride) + " pad=" + std::to_string(pad) +
           " dilation=" + std::to_string(dilation);
  }
};

struct Primitives {
  dnnl::convolution_forward::primitive_desc forward_pd;
  dnnl::convolution_backward_data::primitive_desc backward_data_pd;
  dnnl::convolution_backward_weights::primitive_desc backward_weights_pd;
  dnnl::convolution_forward forward;
  dnnl::convolution_backward_data backward_data;
  dnnl::convolution_backward_weights backward_weights;
  dnnl::memory::desc x_md, y_md, w_md;
};

dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// oneDNN sizes its work for omp_get_max_threads() of the calling thread, when
// a primitive is built and when it runs; one thread on every entry here.
void OneThread() { omp_set_num_threads(1); }

std::unique_ptr<Primitives> Build(const Shape& s) {
  auto& engine = Engine();
  // oneDNN counts dilation from 0 (0 = contiguous taps).
  const dnnl::memory::dims strides{s.stride}, dilates{s.dilation - 1}, pad_l{s.pad}, pad_r{s.pad};
  dnnl::memory::desc x_md({s.n, s.c, s.t}, Dt::f32, Tag::nwc);
  dnnl::memory::desc y_md({s.n, s.o, s.out_frames()}, Dt::f32, Tag::nwc);
  dnnl::memory::desc w_any({s.o, s.c, s.k}, Dt::f32, Tag::any);
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);  // safe to run concurrently
  auto p = std::make_unique<Primitives>();
  p->x_md = x_md;
  p->y_md = y_md;
  p->w_md = dnnl::memory::desc({s.o, s.c, s.k}, Dt::f32, Tag::wio);
  p->forward_pd = dnnl::convolution_forward::primitive_desc(
      engine, dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, x_md,
      w_any, y_md, strides, dilates, pad_l, pad_r, attr);
  p->backward_data_pd = dnnl::convolution_backward_data::primitive_desc(
      engine, dnnl::algorithm::convolution_direct, x_md, w_any, y_md, strides, dilates, pad_l,
      pad_r, p->forward_pd, attr);
  p->backward_weights_pd = dnnl::convolution_backward_weights::primitive_desc(
      engine, dnnl::algorithm::convolution_direct, x_md, w_any, y_md, strides, dilates, pad_l,
      pad_r, p->forward_pd, attr);
  p->forward = dnnl::convolution_forward(p->forward_pd);
  p->backward_data = dnnl::convolution_backward_data(p->backward_data_pd);
  p->backward_weights = dnnl::convolution_backward_weights(p->backward_weights_pd);
  return p;
}

const Primitives& Lookup(const Shape& s) {
  static std::mutex mutex;
  static std::map<decltype(s.key()), std::unique_ptr<Primitives>> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto& entry = cache[s.key()];
  if (!entry) entry = Build(s);
  return *entry;
}

dnnl::stream& Stream() {
  thread_local dnnl::stream stream(Engine());
  return stream;
}

// A scratchpad for one primitive call on this thread.
dnnl::memory Scratchpad(const dnnl::memory::desc& md) {
  thread_local std::vector<char> buffer;
  if (buffer.size() < md.get_size()) buffer.resize(md.get_size());
  return dnnl::memory(md, Engine(), buffer.data());
}

ffi::Error CheckFrames(const Shape& s, int64_t out_frames) {
  if (s.stride < 1 || s.dilation < 1 || s.pad < 0 || s.n < 1 || s.out_frames() != out_frames ||
      out_frames < 1) {
    return ffi::Error(ffi::ErrorCode::kInvalidArgument,
                      "oneDNN temporal convolution (" + s.text() + "): the output has " +
                          std::to_string(out_frames) + " frames, PyTorch's Conv1d gives " +
                          std::to_string(s.out_frames()));
  }
  return ffi::Error::Success();
}

// Runs chunk(i) for i in [0, chunks) on the calling thread and on free threads
// of XLA's pool; returns the first error a chunk raised ('' if none).
std::string RunChunks(ffi::ThreadPool& pool, int64_t chunks,
                      const std::function<void(int64_t)>& chunk) {
  struct State {
    std::atomic<int64_t> next{0}, done{0};
    int64_t chunks = 0;
    const std::function<void(int64_t)>* chunk = nullptr;
    std::mutex mutex;
    std::condition_variable finished;
    std::string error;
  };
  auto state = std::make_shared<State>();
  state->chunks = chunks;
  state->chunk = &chunk;
  auto work = [](State& st) {
    for (int64_t i; (i = st.next.fetch_add(1)) < st.chunks;) {
      OneThread();
      try {
        (*st.chunk)(i);
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> lock(st.mutex);
        if (st.error.empty()) st.error = e.what();
      }
      if (st.done.fetch_add(1) + 1 == st.chunks) {
        std::lock_guard<std::mutex> lock(st.mutex);
        st.finished.notify_all();
      }
    }
  };
  // A helper that starts after the last chunk was taken returns at once; the
  // shared state outlives this call for it.
  const int64_t helpers = std::min<int64_t>(pool.num_threads(), chunks) - 1;
  for (int64_t h = 0; h < helpers; ++h) pool.Schedule([state, work] { work(*state); });
  work(*state);
  std::unique_lock<std::mutex> lock(state->mutex);
  state->finished.wait(lock, [&] { return state->done.load() == chunks; });
  return state->error;
}

// Sequences per chunk: at least two chunks per thread (so a busy thread's
// share moves to a free one), none under 32 sequences.
int64_t ChunkSize(int64_t n, int64_t threads) {
  const int64_t chunks = std::max<int64_t>(1, 2 * threads);
  return std::max<int64_t>(std::min<int64_t>(n, 32), (n + chunks - 1) / chunks);
}

ffi::Error Failed(const char* what, const Shape& s, const std::string& error) {
  return ffi::Error(ffi::ErrorCode::kInternal,
                    std::string("oneDNN ") + what + " (" + s.text() + "): " + error);
}

// The pass over all sequences: `pass(rows, first)` runs one chunk of `rows`
// sequences starting at sequence `first` with that chunk's primitives.
template <typename Pass>
ffi::Error OverChunks(const char* what, const Shape& s, ffi::ThreadPool& pool, Pass pass) {
  OneThread();
  const int64_t size = ChunkSize(s.n, std::max<int64_t>(1, pool.num_threads()));
  const int64_t chunks = (s.n + size - 1) / size;
  std::string error;
  try {
    error = RunChunks(pool, chunks, [&](int64_t i) {
      const int64_t first = i * size, rows = std::min(size, s.n - first);
      Shape part = s;
      part.n = rows;
      pass(Lookup(part), i, first);
    });
  } catch (const std::exception& e) {
    error = e.what();
  }
  return error.empty() ? ffi::Error::Success() : Failed(what, s, error);
}

// The kernel in the layouts that the chunks' primitives take: every chunk but
// the last has the same number of sequences, so there are at most two
// primitives, and oneDNN may choose another kernel layout for each.
class ChunkKernels {
 public:
  // `weights` gives a primitive's kernel layout, e.g. its forward_pd.weights_desc().
  template <typename Weights>
  ChunkKernels(const Shape& s, int64_t pool_threads, const float* kernel, Weights weights) {
    const int64_t size = ChunkSize(s.n, std::max<int64_t>(1, pool_threads));
    const int64_t last = s.n - (s.n - 1) / size * size;
    for (int64_t rows : {std::min(size, s.n), last}) {
      Shape part = s;
      part.n = rows;
      const Primitives& p = Lookup(part);
      const dnnl::memory::desc md = weights(p);
      if (count_ == 1 && md == mems_[0].get_desc()) continue;
      std::vector<float>& storage = Storage(count_);
      storage.resize(md.get_size() / sizeof(float));
      dnnl::memory user(p.w_md, Engine(), const_cast<float*>(kernel));
      mems_[count_] = dnnl::memory(md, Engine(), storage.data());
      dnnl::reorder(user, mems_[count_]).execute(Stream(), user, mems_[count_]);
      Stream().wait();
      ++count_;
    }
  }

  const dnnl::memory& For(const dnnl::memory::desc& md) const {
    return md == mems_[0].get_desc() ? mems_[0] : mems_[count_ - 1];
  }

 private:
  // Kept by the calling thread across calls: no allocation per call.
  static std::vector<float>& Storage(int index) {
    thread_local std::vector<float> storage[2];
    return storage[index];
  }

  dnnl::memory mems_[2];
  int count_ = 0;
};

// Forward and input gradient: one activation in, one out, the kernel in the
// layout the pass's primitive wants. `from_x`: the input is x (forward), else dy.
template <typename Pd, typename Primitive>
ffi::Error KernelPass(const char* what, const Shape& s, ffi::ThreadPool& pool,
                      const float* kernel_data, const float* in, float* out, bool from_x,
                      Pd Primitives::*pd, Primitive Primitives::*primitive, int in_arg,
                      int out_arg) {
  std::unique_ptr<ChunkKernels> kernels;
  try {
    OneThread();
    kernels = std::make_unique<ChunkKernels>(
        s, pool.num_threads(), kernel_data,
        [pd](const Primitives& p) { return (p.*pd).weights_desc(); });
  } catch (const std::exception& e) {
    return Failed(what, s, e.what());
  }
  const int64_t x_row = s.t * s.c, y_row = s.out_frames() * s.o;
  const int64_t in_row = from_x ? x_row : y_row, out_row = from_x ? y_row : x_row;
  return OverChunks(what, s, pool, [&](const Primitives& p, int64_t, int64_t first) {
    float* in_rows = const_cast<float*>(in) + first * in_row;
    dnnl::memory in_mem(from_x ? p.x_md : p.y_md, Engine(), in_rows);
    dnnl::memory out_mem(from_x ? p.y_md : p.x_md, Engine(), out + first * out_row);
    const auto& kernel = kernels->For((p.*pd).weights_desc());
    (p.*primitive).execute(Stream(), {{in_arg, in_mem}, {DNNL_ARG_WEIGHTS, kernel},
                                      {out_arg, out_mem},
                                      {DNNL_ARG_SCRATCHPAD,
                                       Scratchpad((p.*pd).scratchpad_desc())}});
    Stream().wait();
  });
}

ffi::Error Forward(ffi::ThreadPool pool, ffi::Buffer<ffi::F32, 3> x, ffi::Buffer<ffi::F32, 3> w,
                   ffi::ResultBuffer<ffi::F32, 3> y, int64_t stride, int64_t pad,
                   int64_t dilation) {
  auto xd = x.dimensions(), wd = w.dimensions(), yd = y->dimensions();
  Shape s{xd[0], xd[1], xd[2], wd[2], wd[0], stride, pad, dilation};
  if (auto e = CheckFrames(s, yd[1]); e.failure()) return e;
  return KernelPass("forward", s, pool, w.typed_data(), x.typed_data(), y->typed_data(), true,
                    &Primitives::forward_pd, &Primitives::forward, DNNL_ARG_SRC, DNNL_ARG_DST);
}

ffi::Error BackwardData(ffi::ThreadPool pool, ffi::Buffer<ffi::F32, 3> dy,
                        ffi::Buffer<ffi::F32, 3> w, ffi::ResultBuffer<ffi::F32, 3> dx,
                        int64_t stride, int64_t pad, int64_t dilation) {
  auto dyd = dy.dimensions(), wd = w.dimensions(), xd = dx->dimensions();
  Shape s{xd[0], xd[1], xd[2], wd[2], wd[0], stride, pad, dilation};
  if (auto e = CheckFrames(s, dyd[1]); e.failure()) return e;
  return KernelPass("input gradient", s, pool, w.typed_data(), dy.typed_data(),
                    dx->typed_data(), false, &Primitives::backward_data_pd,
                    &Primitives::backward_data, DNNL_ARG_DIFF_DST, DNNL_ARG_DIFF_SRC);
}

ffi::Error BackwardWeights(ffi::ThreadPool pool, ffi::Buffer<ffi::F32, 3> x,
                           ffi::Buffer<ffi::F32, 3> dy, ffi::ResultBuffer<ffi::F32, 3> dw,
                           int64_t stride, int64_t pad, int64_t dilation) {
  auto xd = x.dimensions(), dyd = dy.dimensions(), wd = dw->dimensions();
  Shape s{xd[0], xd[1], xd[2], wd[2], wd[0], stride, pad, dilation};
  if (auto e = CheckFrames(s, dyd[1]); e.failure()) return e;
  const int64_t size = ChunkSize(s.n, std::max<int64_t>(1, pool.num_threads()));
  const int64_t chunks = (s.n + size - 1) / size;
  const size_t elements = static_cast<size_t>(s.k * s.c * s.o);
  // One partial gradient per chunk in the (k, C, O) layout, kept by the
  // calling thread across calls (no allocation per call); a call never runs
  // inside another on the same thread.
  thread_local std::vector<std::vector<float>> kept;
  if (static_cast<int64_t>(kept.size()) < chunks) kept.resize(chunks);
  auto& partials = kept;  // the chunks run on other threads: name this thread's copy
  const int64_t x_row = s.t * s.c, y_row = s.out_frames() * s.o;
  auto done = OverChunks("kernel gradient", s, pool, [&](const Primitives& p, int64_t i,
                                                         int64_t first) {
    thread_local std::vector<float> blocked;  // the chunk's gradient in oneDNN's layout
    const auto& blocked_md = p.backward_weights_pd.diff_weights_desc();
    blocked.resize(blocked_md.get_size() / sizeof(float));
    partials[i].resize(elements);
    dnnl::memory x_mem(p.x_md, Engine(), x.typed_data() + first * x_row);
    dnnl::memory dy_mem(p.y_md, Engine(), dy.typed_data() + first * y_row);
    dnnl::memory blocked_mem(blocked_md, Engine(), blocked.data());
    dnnl::memory plain(p.w_md, Engine(), partials[i].data());
    p.backward_weights.execute(
        Stream(), {{DNNL_ARG_SRC, x_mem}, {DNNL_ARG_DIFF_DST, dy_mem},
                   {DNNL_ARG_DIFF_WEIGHTS, blocked_mem},
                   {DNNL_ARG_SCRATCHPAD, Scratchpad(p.backward_weights_pd.scratchpad_desc())}});
    dnnl::reorder(blocked_mem, plain).execute(Stream(), blocked_mem, plain);
    Stream().wait();
  });
  if (done.failure()) return done;
  float* out = dw->typed_data();
  std::copy(partials[0].begin(), partials[0].begin() + elements, out);
  for (int64_t i = 1; i < chunks; ++i) {
    const float* part = partials[i].data();
    for (size_t j = 0; j < elements; ++j) out[j] += part[j];
  }
  return ffi::Error::Success();
}

}  // namespace

#define SMG_BIND                            \
  ffi::Ffi::Bind()                          \
      .Ctx<ffi::ThreadPool>()               \
      .Arg<ffi::Buffer<ffi::F32, 3>>()      \
      .Arg<ffi::Buffer<ffi::F32, 3>>()      \
      .Ret<ffi::Buffer<ffi::F32, 3>>()      \
      .Attr<int64_t>("stride")              \
      .Attr<int64_t>("pad")                 \
      .Attr<int64_t>("dilation")

XLA_FFI_DEFINE_HANDLER_SYMBOL(SmgConvFramesForward, Forward, SMG_BIND);
XLA_FFI_DEFINE_HANDLER_SYMBOL(SmgConvFramesBackwardData, BackwardData, SMG_BIND);
XLA_FFI_DEFINE_HANDLER_SYMBOL(SmgConvFramesBackwardWeights, BackwardWeights, SMG_BIND);

extern "C" const char* SmgOnednnVersion() {
  static std::string text = [] {
    const dnnl_version_t* v = dnnl_version();
    return std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
           std::to_string(v->patch) + " (" + v->hash + ")";
  }();
  return text.c_str();
}
