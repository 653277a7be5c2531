// JPEG decoding (features::DecodeJpeg), at full size and with DCT scaling. Input: a file's bytes.

#include <cstdint>
#include <string>

#include "features/jpeg.h"
#include "fuzz/fuzz_support.h"

using dpfleet::fuzz::Require;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const dpfleet::fuzz::TempFile file(std::string(reinterpret_cast<const char*>(data), size),
                                     "image.JPEG");
  for (const int64_t min_short_side : {int64_t{0}, int64_t{8}}) {
    const auto image = dpfleet::features::DecodeJpeg(file.path(), min_short_side);
    if (!image.ok()) {
      dpfleet::fuzz::RequireCleanRefusal(image.status(), "DecodeJpeg");
      continue;
    }
    Require(image->dim() == 3 && image->size(2) == 3 && image->scalar_type() == at::kByte,
            "DecodeJpeg returned something other than [H, W, 3] uint8");
    image->max().item<uint8_t>();  // Reads every byte (a sum would widen a copy to int64).
  }
  return 0;
}
