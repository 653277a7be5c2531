#include "dpctl/svg_chart.h"

#include <cmath>

#include "gtest/gtest.h"

namespace dpfleet::dpctl {
namespace {

TEST(AxisTicks, AreNiceAndCoverTheRange) {
  EXPECT_EQ(AxisTicks(0, 10), (std::vector<double>{0, 2, 4, 6, 8, 10}));
  const std::vector<double> ticks = AxisTicks(0.013, 2.93);
  EXPECT_LE(ticks.front(), 0.013);
  EXPECT_GE(ticks.back(), 2.93);
  EXPECT_DOUBLE_EQ(ticks[1] - ticks[0], 1.0);        // 0.5 would make 6 ticks of the 5 asked for.
  const std::vector<double> flat = AxisTicks(3, 3);  // One value: ticks around it.
  EXPECT_LT(flat.front(), 3);
  EXPECT_GT(flat.back(), 3);
}

TEST(ChartSvg, DrawsEveryFinitePointOfEverySeries) {
  Chart chart{.title = "Privacy <spent>", .x_label = "step", .y_label = "epsilon"};
  chart.series.push_back({"job-1", {{1, 0.1}, {2, 0.2}, {3, NAN}, {4, 0.4}}});
  chart.series.push_back({"job-2", {{1, 0.3}}});
  const std::string svg = ChartSvg(chart);
  EXPECT_NE(svg.find("Privacy &lt;spent&gt;"), std::string::npos);
  EXPECT_NE(svg.find("class=\"series\" data-series=\"job-1\" data-points=\"3\""), std::string::npos)
      << svg;
  EXPECT_NE(svg.find("data-series=\"job-2\" data-points=\"1\""), std::string::npos);
  EXPECT_EQ(svg.find("nan"), std::string::npos);
  chart.markers_only = true;
  const std::string markers = ChartSvg(chart);
  EXPECT_NE(markers.find("class=\"markers\" data-series=\"job-1\" data-points=\"3\""),
            std::string::npos);
  EXPECT_EQ(markers.find("polyline"), std::string::npos);
}

TEST(ChartSvg, SaysSoWhenThereIsNoData) {
  const std::string svg = ChartSvg(Chart{.title = "empty", .series = {{"job-1", {}}}});
  EXPECT_NE(svg.find("no data"), std::string::npos);
  EXPECT_EQ(svg.find("<polyline"), std::string::npos);
}

TEST(XmlEscape, EscapesMarkup) {
  EXPECT_EQ(XmlEscape("a<b & \"c\" 'd'>"), "a&lt;b &amp; &quot;c&quot; &#39;d&#39;&gt;");
}

}  // namespace
}  // namespace dpfleet::dpctl
