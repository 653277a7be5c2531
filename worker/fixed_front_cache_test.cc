#include "worker/fixed_front_cache.h"

#include <vector>

#include "gtest/gtest.h"

namespace dpfleet::worker {
namespace {

// A front that squares each example and counts the examples it transforms.
class SquaringFront final : public models::Model {
 public:
  at::Tensor Forward(const at::Tensor& inputs, models::ForwardTrace*) override { return inputs; }
  at::Tensor Preprocess(const at::Tensor& examples) const override {
    transformed += examples.size(0);
    return examples.square().unsqueeze(1);
  }
  bool has_fixed_front() const override { return true; }

  mutable int64_t transformed = 0;
};

at::Tensor Rows(const std::vector<int64_t>& rows) {
  return at::tensor(rows, at::kLong).to(at::kFloat).unsqueeze(1) + 0.5;
}

TEST(FixedFrontCache, TransformsEachRowOnceAndReturnsExactlyTheFront) {
  SquaringFront front;
  FixedFrontCache cache(front, 100, 110);
  const std::vector<int64_t> first = {101, 104, 109};
  EXPECT_TRUE(at::equal(cache.Inputs(first, Rows(first)), front.Preprocess(Rows(first))));
  front.transformed = 0;
  // Out of order, with a repeat and two rows seen before: only 100 and 107 are new.
  const std::vector<int64_t> second = {107, 104, 100, 107, 109};
  const at::Tensor got = cache.Inputs(second, Rows(second));
  EXPECT_EQ(front.transformed, 3);  // 107 twice (in one call) and 100.
  EXPECT_EQ(cache.cached_rows(), 5);
  front.transformed = 0;
  EXPECT_TRUE(at::equal(got, front.Preprocess(Rows(second))));
  // Everything cached: nothing transformed.
  front.transformed = 0;
  EXPECT_TRUE(at::equal(cache.Inputs(first, Rows(first)), front.Preprocess(Rows(first))));
  EXPECT_EQ(front.transformed, 3) << "only the reference call above";
}

}  // namespace
}  // namespace dpfleet::worker
