/* The kernels for the build's default target (x86-64 baseline: SSE2; or any other CPU). */
#define CECE_LEVEL baseline
#include "cece_instantiate.h"
