#include "features/jpeg.h"

#include <cstdio>
// jpeglib.h needs FILE and size_t declared first.
#include <jpeglib.h>

#include <fstream>
#include <iterator>
#include <vector>

#include "gtest/gtest.h"

namespace dpfleet::features {
namespace {

std::string TempPath(const std::string& name) {
  return std::string(getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : "/tmp") + "/" + name;
}

// A smooth test picture: red grows to the right, green downwards, blue is constant.
at::Tensor Gradient(int64_t height, int64_t width) {
  const at::Tensor x = at::linspace(0, 255, width).view({1, width}).expand({height, width});
  const at::Tensor y = at::linspace(0, 255, height).view({height, 1}).expand({height, width});
  return at::stack({x, y, at::full({height, width}, 100.0)}, 2).round().to(at::kByte);
}

TEST(Jpeg, RoundTripsAPicture) {
  const std::string path = TempPath("picture.jpg");
  const at::Tensor picture = Gradient(60, 80);
  ASSERT_TRUE(EncodeJpeg(path, picture, 95).ok());
  auto decoded = DecodeJpeg(path);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  ASSERT_EQ(decoded->sizes(), picture.sizes());
  const double mean_error =
      (decoded->to(at::kFloat) - picture.to(at::kFloat)).abs().mean().item<double>();
  EXPECT_LT(mean_error, 2.0);
}

TEST(Jpeg, DecodesAtTheSmallestScaleAboveTheShorterSide) {
  const std::string path = TempPath("large.jpg");
  ASSERT_TRUE(EncodeJpeg(path, Gradient(300, 400)).ok());
  auto half = DecodeJpeg(path, /*min_short_side=*/100);  // 1/4 would give 75 < 100.
  ASSERT_TRUE(half.ok());
  EXPECT_EQ(half->size(0), 150);
  EXPECT_EQ(half->size(1), 200);
  auto eighth = DecodeJpeg(path, 30);
  ASSERT_TRUE(eighth.ok());
  EXPECT_EQ(eighth->size(0), 38);  // 300 / 8, rounded up.
  EXPECT_EQ(DecodeJpeg(path, 301)->size(0), 300);
}

// Writes a 4x4 JPEG of one colour in `space` (JCS_GRAYSCALE or JCS_CMYK), as scanners and print
// workflows do; libjpeg marks CMYK with an Adobe marker, whose convention is inverted values.
void WriteJpegIn(const std::string& path, J_COLOR_SPACE space, std::vector<unsigned char> pixel) {
  jpeg_compress_struct info;
  jpeg_error_mgr errors;
  info.err = jpeg_std_error(&errors);
  jpeg_create_compress(&info);
  FILE* file = std::fopen(path.c_str(), "wb");
  jpeg_stdio_dest(&info, file);
  info.image_width = 4;
  info.image_height = 4;
  info.input_components = static_cast<int>(pixel.size());
  info.in_color_space = space;
  jpeg_set_defaults(&info);
  jpeg_set_quality(&info, 100, TRUE);
  jpeg_start_compress(&info, TRUE);
  std::vector<unsigned char> row;
  for (int x = 0; x < 4; ++x) row.insert(row.end(), pixel.begin(), pixel.end());
  while (info.next_scanline < info.image_height) {
    unsigned char* data = row.data();
    jpeg_write_scanlines(&info, &data, 1);
  }
  jpeg_finish_compress(&info);
  jpeg_destroy_compress(&info);
  std::fclose(file);
}

TEST(Jpeg, ConvertsGrayscaleAndAdobeCmykToRgb) {
  const std::string gray = TempPath("gray.jpg");
  WriteJpegIn(gray, JCS_GRAYSCALE, {200});
  auto decoded = DecodeJpeg(gray);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->sizes(), (std::vector<int64_t>{4, 4, 3}));
  EXPECT_NEAR(decoded->to(at::kFloat).mean().item<double>(), 200, 2);

  // Adobe-inverted CMYK: cyan ink 255 - 0, no magenta or yellow ink (255), no black (255).
  const std::string cmyk = TempPath("cmyk.jpg");
  WriteJpegIn(cmyk, JCS_CMYK, {0, 255, 255, 255});
  decoded = DecodeJpeg(cmyk);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  const at::Tensor channels = decoded->to(at::kFloat).mean(at::IntArrayRef{0, 1});
  EXPECT_NEAR(channels[0].item<double>(), 0, 3);    // Red absorbed by cyan.
  EXPECT_NEAR(channels[1].item<double>(), 255, 3);  // Green and blue pass.
  EXPECT_NEAR(channels[2].item<double>(), 255, 3);
}

TEST(Jpeg, RefusesFilesThatAreNotWholeJpegs) {
  EXPECT_EQ(DecodeJpeg(TempPath("missing.jpg")).status().code(), absl::StatusCode::kNotFound);

  const std::string path = TempPath("whole.jpg");
  ASSERT_TRUE(EncodeJpeg(path, Gradient(64, 64)).ok());
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  const std::string truncated = TempPath("truncated.jpg");
  std::ofstream(truncated, std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  auto cut = DecodeJpeg(truncated);
  ASSERT_EQ(cut.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(cut.status().message().find(truncated), std::string::npos);

  const std::string png = TempPath("renamed.JPEG");
  std::ofstream(png, std::ios::binary) << "\x89PNG\r\n\x1a\n" << std::string(64, '\0');
  auto renamed = DecodeJpeg(png);
  ASSERT_EQ(renamed.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(renamed.status().message().find("PNG"), std::string::npos);

  const std::string text = TempPath("text.jpg");
  std::ofstream(text) << "not an image at all";
  EXPECT_EQ(DecodeJpeg(text).status().code(), absl::StatusCode::kDataLoss);
}

TEST(Jpeg, RefusesAHeaderClaimingMorePixelsThanTheLimit) {
  const std::string path = TempPath("small.jpg");
  ASSERT_TRUE(EncodeJpeg(path, Gradient(16, 16)).ok());
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  // The baseline frame header: FF C0, length (2), precision (1), height (2), width (2).
  const size_t frame = bytes.find("\xff\xc0");
  ASSERT_NE(frame, std::string::npos);
  for (const size_t at : {frame + 5, frame + 7}) {  // 60000 = 0xEA60 rows and columns
    bytes[at] = static_cast<char>(0xEA);
    bytes[at + 1] = static_cast<char>(0x60);
  }
  const std::string huge = TempPath("huge.jpg");
  std::ofstream(huge, std::ios::binary) << bytes;
  auto decoded = DecodeJpeg(huge);
  ASSERT_EQ(decoded.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(decoded.status().message().find("60000 x 60000"), std::string::npos);
  EXPECT_NE(decoded.status().message().find(huge), std::string::npos);
}

}  // namespace
}  // namespace dpfleet::features
