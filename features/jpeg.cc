#include "features/jpeg.h"

#include <csetjmp>
#include <cstdio>
// jpeglib.h needs FILE and size_t declared first.
#include <jerror.h>
#include <jpeglib.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"

namespace dpfleet::features {
namespace {

// A JPEG header may claim up to 65500 x 65500 pixels in a few hundred bytes; the decoder would
// allocate 12.8 GB for it. Photographs fit well inside 2^26 pixels (8192 x 8192).
constexpr int64_t kMaxPixels = int64_t{1} << 26;
// libjpeg's own buffers (a progressive image's whole coefficient array) stay under this; past it
// the library stops with "backing store not supported" rather than allocating.
constexpr long kMaxDecoderMemory = 512L << 20;

// libjpeg reports fatal errors through error_exit, which must not return: it jumps back to the
// call that started the work, carrying the library's message.
struct ErrorManager {
  jpeg_error_mgr base;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
  bool premature_end = false;
};

void ExitWithMessage(j_common_ptr info) {
  auto* manager = reinterpret_cast<ErrorManager*>(info->err);
  (*info->err->format_message)(info, manager->message);
  std::longjmp(manager->jump, 1);
}

// libjpeg only warns when the data ends early and fills the rest of the image with grey; such an
// image must not be used, so that warning is remembered. Other warnings (extraneous bytes, as in
// some ImageNet files) leave a usable image.
void NoteWarnings(j_common_ptr info, int level) {
  if (level >= 0) return;
  auto* manager = reinterpret_cast<ErrorManager*>(info->err);
  ++info->err->num_warnings;
  if (info->err->msg_code == JWRN_JPEG_EOF) manager->premature_end = true;
}

struct FileCloser {
  void operator()(FILE* file) const { std::fclose(file); }
};

bool LooksLikePng(FILE* file) {
  unsigned char magic[4] = {};
  const size_t read = std::fread(magic, 1, 4, file);
  std::rewind(file);
  return read == 4 && magic[0] == 0x89 && magic[1] == 'P' && magic[2] == 'N' && magic[3] == 'G';
}

// Everything the libjpeg calls touch lives on the heap: after a longjmp, automatic variables
// modified since setjmp have indeterminate values, and no destructor may be skipped.
struct Decoder {
  jpeg_decompress_struct info;
  ErrorManager errors;
  bool created = false;
  at::Tensor rgb;
  std::vector<unsigned char> cmyk_row;
  ~Decoder() {
    if (created) jpeg_destroy_decompress(&info);
  }
};

struct Encoder {
  jpeg_compress_struct info;
  ErrorManager errors;
  bool created = false;
  ~Encoder() {
    if (created) jpeg_destroy_compress(&info);
  }
};

}  // namespace

absl::StatusOr<at::Tensor> DecodeJpeg(const std::string& path, int64_t min_short_side) {
  const std::unique_ptr<FILE, FileCloser> file(std::fopen(path.c_str(), "rb"));
  if (file == nullptr) return absl::NotFoundError(absl::StrCat("cannot open image ", path));
  if (LooksLikePng(file.get())) {
    return absl::DataLossError(absl::StrCat(path, " is a PNG file, not a JPEG"));
  }
  const auto decoder = std::make_unique<Decoder>();
  jpeg_decompress_struct& info = decoder->info;
  info.err = jpeg_std_error(&decoder->errors.base);
  decoder->errors.base.error_exit = ExitWithMessage;
  decoder->errors.base.emit_message = NoteWarnings;
  if (setjmp(decoder->errors.jump) != 0) {
    return absl::DataLossError(
        absl::StrCat(path, " is not a decodable JPEG: ", decoder->errors.message));
  }
  jpeg_create_decompress(&info);
  decoder->created = true;
  info.mem->max_memory_to_use = kMaxDecoderMemory;
  jpeg_stdio_src(&info, file.get());
  jpeg_read_header(&info, TRUE);
  if (static_cast<int64_t>(info.image_width) * info.image_height > kMaxPixels) {
    return absl::ResourceExhaustedError(
        absl::StrCat(path, " is ", info.image_width, " x ", info.image_height,
                     " pixels, more than the decoder's limit of ", kMaxPixels, " pixels"));
  }
  const bool cmyk = info.jpeg_color_space == JCS_CMYK || info.jpeg_color_space == JCS_YCCK;
  info.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
  // libjpeg-turbo's IDCT can scale by M/8, but only M = 1, 2, 4 (and 8) are SIMD-accelerated;
  // the others decode slower than full size (bench/extract_bench). The smallest of those that
  // still covers the wanted short side skips detail the resize would discard.
  info.scale_num = 1;
  info.scale_denom = 1;
  const int64_t short_side = std::min(info.image_width, info.image_height);
  for (unsigned denom = 8; min_short_side > 0 && denom > 1; denom /= 2) {
    if ((short_side + denom - 1) / denom >= min_short_side) {  // libjpeg rounds sizes up.
      info.scale_denom = denom;
      break;
    }
  }
  jpeg_start_decompress(&info);
  const int64_t width = info.output_width;
  decoder->rgb = at::empty({static_cast<int64_t>(info.output_height), width, 3}, at::kByte);
  uint8_t* out = decoder->rgb.data_ptr<uint8_t>();
  if (cmyk) decoder->cmyk_row.resize(static_cast<size_t>(width) * 4);
  // Past a premature end libjpeg fills the rows with grey; the image is refused below, so the
  // remaining rows are not decoded.
  while (info.output_scanline < info.output_height && !decoder->errors.premature_end) {
    unsigned char* row = out + static_cast<int64_t>(info.output_scanline) * width * 3;
    if (!cmyk) {
      jpeg_read_scanlines(&info, &row, 1);
      continue;
    }
    unsigned char* source = decoder->cmyk_row.data();
    jpeg_read_scanlines(&info, &source, 1);
    // Adobe writes CMYK inverted (255 means no ink); others store ink amounts.
    const int flip = info.saw_Adobe_marker ? 0 : 255;
    for (int64_t x = 0; x < width; ++x) {
      const int k = std::abs(flip - source[4 * x + 3]);
      for (int channel = 0; channel < 3; ++channel) {
        row[3 * x + channel] =
            static_cast<unsigned char>(std::abs(flip - source[4 * x + channel]) * k / 255);
      }
    }
  }
  if (decoder->errors.premature_end) {
    return absl::DataLossError(absl::StrCat(path, " is truncated: its JPEG data ends early"));
  }
  jpeg_finish_decompress(&info);
  return std::move(decoder->rgb);
}

absl::Status EncodeJpeg(const std::string& path, const at::Tensor& rgb, int quality) {
  if (rgb.dim() != 3 || rgb.size(2) != 3 || rgb.scalar_type() != at::kByte) {
    return absl::InvalidArgumentError("EncodeJpeg needs a uint8 [H, W, 3] tensor");
  }
  const at::Tensor pixels = rgb.contiguous();
  const std::unique_ptr<FILE, FileCloser> file(std::fopen(path.c_str(), "wb"));
  if (file == nullptr) return absl::InternalError(absl::StrCat("cannot create ", path));
  const auto encoder = std::make_unique<Encoder>();
  jpeg_compress_struct& info = encoder->info;
  info.err = jpeg_std_error(&encoder->errors.base);
  encoder->errors.base.error_exit = ExitWithMessage;
  if (setjmp(encoder->errors.jump) != 0) {
    return absl::InternalError(absl::StrCat("cannot encode ", path, ": ", encoder->errors.message));
  }
  jpeg_create_compress(&info);
  encoder->created = true;
  jpeg_stdio_dest(&info, file.get());
  info.image_width = static_cast<JDIMENSION>(pixels.size(1));
  info.image_height = static_cast<JDIMENSION>(pixels.size(0));
  info.input_components = 3;
  info.in_color_space = JCS_RGB;
  jpeg_set_defaults(&info);
  jpeg_set_quality(&info, std::clamp(quality, 1, 100), TRUE);
  jpeg_start_compress(&info, TRUE);
  const uint8_t* data = pixels.data_ptr<uint8_t>();
  while (info.next_scanline < info.image_height) {
    auto* row = const_cast<unsigned char*>(data + static_cast<int64_t>(info.next_scanline) *
                                                      pixels.size(1) * 3);
    jpeg_write_scanlines(&info, &row, 1);
  }
  jpeg_finish_compress(&info);
  if (std::fflush(file.get()) != 0) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

}  // namespace dpfleet::features
