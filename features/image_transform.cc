#include "features/image_transform.h"

#include <ATen/ops/_upsample_bilinear2d_aa.h>

#include <algorithm>
#include <cmath>

namespace dpfleet::features {

at::Tensor PrepareImage(const at::Tensor& rgb, const ImageTransform& transform) {
  const int64_t height = rgb.size(0), width = rgb.size(1);
  const double scale = static_cast<double>(transform.resize) / std::min(height, width);
  const int64_t resized_height = std::max<int64_t>(transform.resize, std::lround(height * scale));
  const int64_t resized_width = std::max<int64_t>(transform.resize, std::lround(width * scale));
  at::Tensor image = rgb.permute({2, 0, 1}).unsqueeze(0).to(at::kFloat).div_(255.0);
  if (resized_height != height || resized_width != width) {
    image = at::_upsample_bilinear2d_aa(image, {resized_height, resized_width},
                                        /*align_corners=*/false);
  }
  const int64_t top = (resized_height - transform.crop) / 2;
  const int64_t left = (resized_width - transform.crop) / 2;
  image = image[0]
              .slice(1, top, top + transform.crop)
              .slice(2, left, left + transform.crop)
              .clamp(0.0, 1.0);
  const at::Tensor mean =
      at::tensor({transform.mean[0], transform.mean[1], transform.mean[2]}, at::kFloat)
          .view({3, 1, 1});
  const at::Tensor stddev =
      at::tensor({transform.stddev[0], transform.stddev[1], transform.stddev[2]}, at::kFloat)
          .view({3, 1, 1});
  return image.sub(mean).div_(stddev).contiguous();
}

}  // namespace dpfleet::features
