#ifndef DPFLEET_DPCTL_SVG_CHART_H_
#define DPFLEET_DPCTL_SVG_CHART_H_

// Line and scatter charts as standalone SVG (no scripts, no external fonts or fetches), for
// `dpctl plot` and the HTML report.

#include <string>
#include <utility>
#include <vector>

namespace dpfleet::dpctl {

struct ChartSeries {
  std::string name;
  std::vector<std::pair<double, double>> points;  // (x, y); non-finite points are left out.
};

struct Chart {
  std::string title;
  std::string x_label;
  std::string y_label;
  std::vector<ChartSeries> series;
  // Draw each point as a marker (and no line): evaluations, or a frontier across jobs.
  bool markers_only = false;
  int width = 640;
  int height = 320;
};

// Returns "nice" axis ticks (1, 2 or 5 times a power of ten apart, about `count` of them)
// covering [low, high]; for low == high, ticks around that value.
std::vector<double> AxisTicks(double low, double high, int count = 5);

// Returns the chart as an <svg> element: axes with ticks, one polyline (class "series") or one
// group of circles (class "markers") per series, each with data-points="N", a legend and the
// title. A chart with no finite point says "no data" instead of drawing axes.
std::string ChartSvg(const Chart& chart);

// Returns `text` with &, <, >, " and ' escaped for XML.
std::string XmlEscape(const std::string& text);

}  // namespace dpfleet::dpctl

#endif  // DPFLEET_DPCTL_SVG_CHART_H_
