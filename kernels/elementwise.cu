// elementwise.cu — pointwise maps.
//
//   unary_f32:           y_i  = f(x_i)
//   unary_backward_f32:  dx_i = dy_i · f'(x_i)
//   binary_same_f32:     out_i = a_i ∘ b_i                         (equal shapes)
//   binary_bcast_f32:    out[i] = a[Σ_d c_d·sa_d] ∘ b[Σ_d c_d·sb_d] (numpy broadcasting)
//                        where (c_0 … c_{r−1}) is the row-major multi-index of i in out's dims and
//                        sa_d / sb_d are the operands' strides, 0 on a stretched (size-1) dim
//   scale_f32:           x_i ← c · x_i                              (in place)
//
// The unary ops, with p0/p1 their parameters (UnaryOp in src/backend/mod.rs, same order):
//   0 Neg −x              f' = −1
//   1 Exp eˣ              f' = eˣ
//   2 Log ln x            f' = 1/x
//   3 Sqrt √x             f' = 1/(2√x)
//   4 Square x²           f' = 2x
//   5 Relu max(x,0)       f' = [x > 0]
//   6 LeakyRelu(p0)       x > 0 ? x : p0·x               f' = x > 0 ? 1 : p0
//   7 Elu(p0)             x > 0 ? x : p0·(eˣ − 1)        f' = x > 0 ? 1 : p0·eˣ
//   8 Softplus            max(x,0) + log1p(e^{−|x|})     f' = σ(x)
//   9 Sigmoid σ(x)        f' = σ(1 − σ)
//  10 Tanh                f' = 1 − tanh²
//  11 Affine p0·x + p1    f' = p0
//  12 Abs |x|             f' = sign(x), 0 at 0
// Binary ops: 0 Add, 1 Sub, 2 Mul, 3 Div, 4 Eq (1 where a == b else 0), 5 Maximum.
//
// NaN propagates through every op and derivative that reads its input, as in PyTorch and the CPU
// backend (src/backend/cpu/elementwise.rs), bit for bit the same: relu, its derivative and the
// derivatives of leaky relu and abs pass a NaN x on (fmaxf(NaN, 0) would be 0, and [x > 0] of NaN
// is 0), Maximum returns NaN when either operand is (fmaxf returns the other).
//
// Contiguous kernels read and write float4 when `vec4` says every pointer is 16-byte aligned (the
// allocator's buffers always are); the tail (n mod 4) is done one by one.
#include "common.cuh"

// x when it is NaN, else `otherwise` (the CPU's nan_or): a derivative that is 0 on a flat side
// still passes a NaN input on.
__device__ __forceinline__ float nan_or(float x, float otherwise) {
    return isnan(x) ? x : otherwise;
}

__device__ __forceinline__ float unary_f(int op, float x, float p0, float p1) {
    switch (op) {
        case 0: return -x;
        case 1: return expf(x);
        case 2: return logf(x);
        case 3: return sqrtf(x);
        case 4: return x * x;
        case 5: return isnan(x) ? x : fmaxf(x, 0.0f);  // fmaxf(NaN, 0) is 0
        case 6: return x > 0.0f ? x : p0 * x;
        case 7: return x > 0.0f ? x : p0 * expm1f(x);
        case 8: return softplusf_stable(x);
        case 9: return sigmoidf_stable(x);
        case 10: return tanhf(x);
        case 11: return __fadd_rn(__fmul_rn(x, p0), p1);  // no FMA contraction: as the CPU
        case 12: return fabsf(x);
        default: return __int_as_float(0x7fc00000);  // NaN: an unknown op never passes silently
    }
}

__device__ __forceinline__ float unary_df(int op, float x, float g, float p0) {
    switch (op) {
        case 0: return -g;
        case 1: return g * expf(x);
        case 2: return g / x;
        case 3: return g * 0.5f / sqrtf(x);
        case 4: return 2.0f * x * g;
        case 5: return x > 0.0f ? g : nan_or(x, 0.0f);
        case 6: return x > 0.0f ? g : nan_or(x, p0 * g);
        case 7: return x > 0.0f ? g : g * p0 * expf(x);
        case 8: return g * sigmoidf_stable(x);
        case 9: {
            float s = sigmoidf_stable(x);
            return g * s * (1.0f - s);
        }
        case 10: {
            float t = tanhf(x);
            return g * (1.0f - t * t);
        }
        case 11: return g * p0;
        case 12: return x > 0.0f ? g : (x < 0.0f ? -g : nan_or(x, 0.0f));
        default: return __int_as_float(0x7fc00000);
    }
}

__device__ __forceinline__ float binary_f(int op, float a, float b) {
    switch (op) {
        case 0: return a + b;
        case 1: return a - b;
        case 2: return a * b;
        case 3: return a / b;
        case 4: return a == b ? 1.0f : 0.0f;
        case 5: return (isnan(a) || isnan(b)) ? a + b : fmaxf(a, b);  // NaN propagates
        default: return __int_as_float(0x7fc00000);
    }
}

extern "C" __global__ void unary_f32(const float* __restrict__ x, float* __restrict__ y, u64 n,
                                     int op, float p0, float p1, int vec4) {
    u64 done = 0;
    if (vec4) {
        const u64 n4 = n / 4;
        const float4* x4 = reinterpret_cast<const float4*>(x);
        float4* y4 = reinterpret_cast<float4*>(y);
        SSVAE_GRID_LOOP(i, n4) {
            float4 v = x4[i];
            v.x = unary_f(op, v.x, p0, p1);
            v.y = unary_f(op, v.y, p0, p1);
            v.z = unary_f(op, v.z, p0, p1);
            v.w = unary_f(op, v.w, p0, p1);
            y4[i] = v;
        }
        done = n4 * 4;
    }
    SSVAE_GRID_LOOP(i, n - done) y[done + i] = unary_f(op, x[done + i], p0, p1);
}

extern "C" __global__ void unary_backward_f32(const float* __restrict__ x,
                                              const float* __restrict__ g,
                                              float* __restrict__ dx, u64 n, int op, float p0,
                                              int vec4) {
    u64 done = 0;
    if (vec4) {
        const u64 n4 = n / 4;
        const float4* x4 = reinterpret_cast<const float4*>(x);
        const float4* g4 = reinterpret_cast<const float4*>(g);
        float4* d4 = reinterpret_cast<float4*>(dx);
        SSVAE_GRID_LOOP(i, n4) {
            float4 v = x4[i], w = g4[i], o;
            o.x = unary_df(op, v.x, w.x, p0);
            o.y = unary_df(op, v.y, w.y, p0);
            o.z = unary_df(op, v.z, w.z, p0);
            o.w = unary_df(op, v.w, w.w, p0);
            d4[i] = o;
        }
        done = n4 * 4;
    }
    SSVAE_GRID_LOOP(i, n - done) dx[done + i] = unary_df(op, x[done + i], g[done + i], p0);
}

extern "C" __global__ void binary_same_f32(const float* __restrict__ a,
                                           const float* __restrict__ b, float* __restrict__ out,
                                           u64 n, int op, int vec4) {
    u64 done = 0;
    if (vec4) {
        const u64 n4 = n / 4;
        const float4* a4 = reinterpret_cast<const float4*>(a);
        const float4* b4 = reinterpret_cast<const float4*>(b);
        float4* o4 = reinterpret_cast<float4*>(out);
        SSVAE_GRID_LOOP(i, n4) {
            float4 u = a4[i], v = b4[i], o;
            o.x = binary_f(op, u.x, v.x);
            o.y = binary_f(op, u.y, v.y);
            o.z = binary_f(op, u.z, v.z);
            o.w = binary_f(op, u.w, v.w);
            o4[i] = o;
        }
        done = n4 * 4;
    }
    SSVAE_GRID_LOOP(i, n - done) out[done + i] = binary_f(op, a[done + i], b[done + i]);
}

// Broadcast geometry, dims left-aligned in [0, rank); the host has merged dims where it could.
#define BCAST_MAX_RANK 6
struct BcastMeta {
    u32 rank;
    u32 dims[BCAST_MAX_RANK];
    u32 a_strides[BCAST_MAX_RANK];
    u32 b_strides[BCAST_MAX_RANK];
};

// n < 2^32 is checked by the host.
extern "C" __global__ void binary_bcast_f32(const float* __restrict__ a,
                                            const float* __restrict__ b,
                                            float* __restrict__ out, u32 n, int op,
                                            BcastMeta meta) {
    for (u32 i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        u32 rem = i, ao = 0, bo = 0;
#pragma unroll
        for (int d = BCAST_MAX_RANK - 1; d >= 0; --d) {
            if (d < (int)meta.rank) {
                const u32 c = rem % meta.dims[d];
                rem /= meta.dims[d];
                ao += c * meta.a_strides[d];
                bo += c * meta.b_strides[d];
            }
        }
        out[i] = binary_f(op, a[ao], b[bo]);
    }
}

extern "C" __global__ void scale_f32(float* __restrict__ x, u64 n, float c, int vec4) {
    u64 done = 0;
    if (vec4) {
        const u64 n4 = n / 4;
        float4* x4 = reinterpret_cast<float4*>(x);
        SSVAE_GRID_LOOP(i, n4) {
            float4 v = x4[i];
            v.x *= c;
            v.y *= c;
            v.z *= c;
            v.w *= c;
            x4[i] = v;
        }
        done = n4 * 4;
    }
    SSVAE_GRID_LOOP(i, n - done) x[done + i] *= c;
}
