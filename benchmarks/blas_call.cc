// Batched float32 matrix products as an XLA FFI custom call backed by the host's OpenBLAS
// (benchmarks/blas_call.py builds, loads and registers it).
//
// C[..., m, n] = op(A)[..., m, k] @ op(B)[..., k, n], one cblas_sgemm per leading index, where
// op transposes the last two axes when trans_a / trans_b is set. With compute = false the call
// only fills C with zeros: a step built that way times everything but its products.
//
// The BLAS entry points come from Python (the library numpy loaded), so nothing links against a
// BLAS here. Each call runs its products on the calling thread with one BLAS thread: XLA:CPU
// already runs a step's member chunks side by side, one per core.
#include <cstdint>
#include <cstring>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

// CBLAS enums (cblas.h): row-major order, no transpose, transpose.
constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;

using Sgemm64 = void (*)(int, int, int, int64_t, int64_t, int64_t, float, const float*, int64_t,
                         const float*, int64_t, float, float*, int64_t);
using Sgemm32 = void (*)(int, int, int, int32_t, int32_t, int32_t, float, const float*, int32_t,
                         const float*, int32_t, float, float*, int32_t);
using SetThreadsLocal = int (*)(int);

void* sgemm = nullptr;
bool ilp64 = true;
SetThreadsLocal set_threads_local = nullptr;

void Gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float* a,
          const float* b, float* c) {
  const int ta = trans_a ? kTrans : kNoTrans, tb = trans_b ? kTrans : kNoTrans;
  const int64_t lda = trans_a ? m : k, ldb = trans_b ? k : n;
  if (ilp64) {
    reinterpret_cast<Sgemm64>(sgemm)(kRowMajor, ta, tb, m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c,
                                     n);
  } else {
    reinterpret_cast<Sgemm32>(sgemm)(kRowMajor, ta, tb, m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c,
                                     n);
  }
}

ffi::Error BatchedSgemm(ffi::AnyBuffer a, ffi::AnyBuffer b, ffi::Result<ffi::AnyBuffer> c,
                        bool trans_a, bool trans_b, bool compute) {
  if (a.element_type() != ffi::F32 || b.element_type() != ffi::F32 ||
      c->element_type() != ffi::F32) {
    return ffi::Error::InvalidArgument("blas_call: float32 operands only");
  }
  const auto ad = a.dimensions(), bd = b.dimensions(), cd = c->dimensions();
  const size_t rank = cd.size();
  if (rank < 2 || ad.size() != rank || bd.size() != rank) {
    return ffi::Error::InvalidArgument("blas_call: operands need the same rank, at least 2");
  }
  const int64_t m = cd[rank - 2], n = cd[rank - 1];
  const int64_t k = trans_a ? ad[rank - 2] : ad[rank - 1];
  const int64_t a_m = trans_a ? ad[rank - 1] : ad[rank - 2];
  const int64_t b_k = trans_b ? bd[rank - 1] : bd[rank - 2];
  const int64_t b_n = trans_b ? bd[rank - 2] : bd[rank - 1];
  if (a_m != m || b_k != k || b_n != n) {
    return ffi::Error::InvalidArgument("blas_call: operand shapes do not multiply");
  }
  int64_t batch = 1;
  for (size_t i = 0; i + 2 < rank; ++i) {
    if (ad[i] != cd[i] || bd[i] != cd[i]) {
      return ffi::Error::InvalidArgument("blas_call: leading axes differ");
    }
    batch *= cd[i];
  }
  float* out = static_cast<float*>(c->untyped_data());
  if (!compute) {
    std::memset(out, 0, sizeof(float) * batch * m * n);
    return ffi::Error::Success();
  }
  if (sgemm == nullptr) return ffi::Error::Internal("blas_call: no BLAS was set");
  if (set_threads_local != nullptr) set_threads_local(1);
  const float* ap = static_cast<const float*>(a.untyped_data());
  const float* bp = static_cast<const float*>(b.untyped_data());
  for (int64_t i = 0; i < batch; ++i) {
    Gemm(trans_a, trans_b, m, n, k, ap + i * m * k, bp + i * k * n, out + i * m * n);
  }
  return ffi::Error::Success();
}

}  // namespace

extern "C" void blas_call_set_blas(void* sgemm_fn, int is_ilp64, void* set_threads_local_fn) {
  sgemm = sgemm_fn;
  ilp64 = is_ilp64 != 0;
  set_threads_local = reinterpret_cast<SetThreadsLocal>(set_threads_local_fn);
}

XLA_FFI_DEFINE_HANDLER_SYMBOL(BlasCallBatchedSgemm, BatchedSgemm,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<bool>("trans_a")
                                  .Attr<bool>("trans_b")
                                  .Attr<bool>("compute"));
