// Every recipe parses as a JobSpec, passes the coordinator's validation and plans on
// Fashion-MNIST's 60,000 training examples, so that `dpctl submit --spec` cannot fail on one.

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "coordinator/job_plan.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "proto/dpfleet.pb.h"

namespace dpfleet {
namespace {

TEST(Recipes, EveryRecipeValidatesAndPlans) {
  int recipes = 0;
  for (const auto& entry : std::filesystem::directory_iterator("recipes")) {
    if (entry.path().extension() != ".textproto") continue;
    ++recipes;
    std::ifstream file(entry.path());
    std::stringstream text;
    text << file.rdbuf();
    v1::JobSpec spec;
    ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(text.str(), &spec)) << entry.path();
    EXPECT_TRUE(coordinator::ValidateJobSpec(spec).ok())
        << entry.path() << ": " << coordinator::ValidateJobSpec(spec);
    const auto plan = coordinator::PlanJob(spec, 60000);
    ASSERT_TRUE(plan.ok()) << entry.path() << ": " << plan.status();
    EXPECT_GT(plan->steps, 0);
    // The recipe's comment says what it reaches and how that was measured.
    EXPECT_NE(text.str().find("Measured:"), std::string::npos) << entry.path();
    EXPECT_NE(text.str().find("dpctl submit --spec " + entry.path().string()), std::string::npos)
        << entry.path();
  }
  EXPECT_GE(recipes, 3);
}

}  // namespace
}  // namespace dpfleet
