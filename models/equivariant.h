#ifndef DPFLEET_MODELS_EQUIVARIANT_H_
#define DPFLEET_MODELS_EQUIVARIANT_H_

// Convolutions equivariant to the dihedral group D4 (the 8 rotations by multiples of 90 degrees and
// their reflections), with regular representations (Cohen and Welling 2016, "Group Equivariant
// Convolutional Networks"): a feature "field" carries one channel per group element.
//
// The trainable parameters are the shared filters; the convolution runs on the expanded filter bank
// in which every group element g contributes the filter transformed by g (and, between group
// feature maps, with its group axis permuted by g^-1). The expansion is a fixed gather
// W = theta[index], so the gradient of an example with respect to theta is the scatter-add of its
// gradient with respect to W: the per-example norms the engine clips are taken over the real
// (shared) parameters, never over the expanded copies.

#include <ATen/ATen.h>

#include <string>

#include "models/layers.h"

namespace dpfleet::models {

// The order of D4.
constexpr int64_t kD4Order = 8;

// Transforms `images` [..., H, W] (H == W) by the group element `element` in [0, 8): a horizontal
// flip when element >= 4, then a rotation by 90 * (element % 4) degrees counter-clockwise.
at::Tensor TransformD4(const at::Tensor& images, int element);

class D4Conv2d {
 public:
  // in_fields: 0 for a lifting layer on plain images with `in_channels` channels; otherwise the
  // number of input fields (the input then has in_fields * 8 channels). Outputs out_fields * 8
  // channels, ordered field-major: channel f * 8 + g is field f at group element g.
  D4Conv2d(ParameterSet& parameters, const std::string& name, int64_t in_channels,
           int64_t in_fields, int64_t out_fields, int64_t kernel, at::Generator& generator);
  at::Tensor Forward(const ParameterSet& parameters, const at::Tensor& x,
                     ForwardTrace* trace) const;

 private:
  std::string name_;
  int64_t kernel_;
  int64_t out_channels_;
  int64_t in_channels_;  // Of the expanded convolution.
  int weight_ = -1;
  at::Tensor index_;  // Expanded weight [out, in, k, k] as indices into the flat parameter.
  // Fixed orderings from which per-example gradients of the shared filter are formed
  // (equivariant.cc): the flat expanded entries sorted by the shared entry they take (kD4Order per
  // entry); and for each shared entry m of a field's filter, the patch row that holds it under
  // each group element g, at m * kD4Order + g.
  at::Tensor expanded_by_shared_;
  at::Tensor patch_rows_by_copy_;
};

// Averages each field over its 8 group channels: [B, F * 8, H, W] -> [B, F, H, W], invariant to D4.
at::Tensor GroupPool(const at::Tensor& x);

}  // namespace dpfleet::models

#endif  // DPFLEET_MODELS_EQUIVARIANT_H_
