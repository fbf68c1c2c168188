// DIPY's Gauss-Newton step for SSD and EM: a multigrid V-cycle on the
// linearised energy (see gauss_newton.cpp).
#pragma once

#include "spectralign_fast/register/fields.hpp"

namespace spectralign_fast::reg::fieldkit {

// Solves, on grid s (dimension s.ndim), for disp (zero on entry) the
// Gauss-Newton system of DIPY's v_cycle: per voxel
//   (g g^T + sigma_sq lambda nn) d = b + sigma_sq lambda sum(neighbours)
// with b = delta g (or `target` on coarse levels); sigma_sq nullptr means 1,
// inf means "no data" (d = neighbour mean). n: V-cycle depth, k: sweeps per
// visit. Returns sum(delta^2).
double v_cycle(int n, int k, const float* delta, const float* sigma_sq, const float* grad, const float* target,
               double lambda, float* disp, const FieldShape& s, int threads);

}  // namespace spectralign_fast::reg::fieldkit
