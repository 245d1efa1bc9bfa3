// The AVX-512 (F, DQ, BW, VL) kernels. Built with -mavx512f -mavx512dq
// -mavx512bw -mavx512vl -mavx2 -mfma on this file only (see csrc/CMakeLists.txt)
// and run only when cpu_features() says the CPU and OS support them.
// Everything here lives in namespace rnnkit::avx512.
// Only C headers and intrinsics are used below: a std:: template instantiated
// here could be merged by the linker with the baseline's copy (ODR).
#include <cstddef>
#include <cstdint>
#include <immintrin.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "dispatch/kernel_table.h"

#define RNNKIT_ISA avx512
#include "kernels/vec_avx512.h"
#include "kernels/vecmath.h"
#include "kernels/gemm.h"
#include "cells/sequence.h"
#include "cells/rows.h"
#include "cells/lstm.h"
#include "cells/gru.h"
#include "cells/rnn.h"
#include "cells/forward.h"
#include "cells/backward.h"
#include "cells/table.h"
#include "kernels/user_gemm.h"
#include "cells/rtrl.h"
#include "kernels/fma_peak.h"
