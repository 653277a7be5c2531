#include "dpctl/svg_chart.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace dpfleet::dpctl {
namespace {

// Distinguishable on white and for the common colour-vision deficiencies (Okabe & Ito).
constexpr const char* kColours[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                    "#E69F00", "#56B4E9", "#000000"};

constexpr int kLeft = 64, kRight = 16, kTop = 32, kBottom = 44;

std::string Tick(double value) { return absl::StrFormat("%.6g", value); }

}  // namespace

std::string XmlEscape(const std::string& text) {
  std::string escaped;
  for (char c : text) {
    switch (c) {
      case '&':
        escaped += "&amp;";
        break;
      case '<':
        escaped += "&lt;";
        break;
      case '>':
        escaped += "&gt;";
        break;
      case '"':
        escaped += "&quot;";
        break;
      case '\'':
        escaped += "&#39;";
        break;
      default:
        escaped += c;
    }
  }
  return escaped;
}

std::vector<double> AxisTicks(double low, double high, int count) {
  if (!(high > low)) {
    const double pad = low == 0 ? 1 : std::abs(low) * 0.1;
    low -= pad;
    high += pad;
  }
  const double raw = (high - low) / std::max(1, count);
  const double magnitude = std::pow(10, std::floor(std::log10(raw)));
  double step = magnitude;
  for (double factor : {1.0, 2.0, 5.0, 10.0}) {
    step = factor * magnitude;
    if (step >= raw) break;
  }
  std::vector<double> ticks;
  for (double t = std::floor(low / step) * step; t <= high + step * 1e-9; t += step) {
    ticks.push_back(std::abs(t) < step * 1e-9 ? 0.0 : t);
  }
  if (ticks.back() < high) ticks.push_back(ticks.back() + step);
  return ticks;
}

std::string ChartSvg(const Chart& chart) {
  const double inf = std::numeric_limits<double>::infinity();
  double x_low = inf, x_high = -inf, y_low = inf, y_high = -inf;
  for (const ChartSeries& series : chart.series) {
    for (const auto& [x, y] : series.points) {
      if (!std::isfinite(x) || !std::isfinite(y)) continue;
      x_low = std::min(x_low, x);
      x_high = std::max(x_high, x);
      y_low = std::min(y_low, y);
      y_high = std::max(y_high, y);
    }
  }
  std::string svg = absl::StrFormat(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"%d\" height=\"%d\" "
      "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n"
      "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
      "<text x=\"%d\" y=\"20\" font-size=\"14\" font-weight=\"bold\">%s</text>\n",
      chart.width, chart.height, chart.width, chart.height, kLeft, XmlEscape(chart.title));
  if (x_low > x_high) {
    absl::StrAppend(&svg,
                    absl::StrFormat("<text class=\"no-data\" x=\"%d\" y=\"%d\">no data</text>\n",
                                    chart.width / 2 - 24, chart.height / 2));
    return svg + "</svg>\n";
  }
  const std::vector<double> x_ticks = AxisTicks(x_low, x_high);
  const std::vector<double> y_ticks = AxisTicks(y_low, y_high);
  const double x0 = x_ticks.front(), x1 = x_ticks.back();
  const double y0 = y_ticks.front(), y1 = y_ticks.back();
  const double plot_w = chart.width - kLeft - kRight, plot_h = chart.height - kTop - kBottom;
  auto px = [&](double x) { return kLeft + (x - x0) / (x1 - x0) * plot_w; };
  auto py = [&](double y) { return kTop + plot_h - (y - y0) / (y1 - y0) * plot_h; };

  absl::StrAppend(&svg, "<g class=\"axes\" stroke=\"#999\" stroke-width=\"1\">\n");
  for (double t : y_ticks) {
    absl::StrAppend(&svg, absl::StrFormat("<line x1=\"%d\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" "
                                          "stroke=\"#eee\"/>\n",
                                          kLeft, kLeft + plot_w, py(t), py(t)));
  }
  absl::StrAppend(&svg, absl::StrFormat("<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%.1f\" "
                                        "fill=\"none\"/>\n</g>\n",
                                        kLeft, kTop, plot_w, plot_h));
  for (double t : x_ticks) {
    absl::StrAppend(&svg, absl::StrFormat("<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" "
                                          "text-anchor=\"middle\">%s</text>\n",
                                          px(t), kTop + plot_h + 16, Tick(t)));
  }
  for (double t : y_ticks) {
    absl::StrAppend(&svg, absl::StrFormat("<text class=\"tick\" x=\"%d\" y=\"%.1f\" "
                                          "text-anchor=\"end\">%s</text>\n",
                                          kLeft - 6, py(t) + 4, Tick(t)));
  }
  absl::StrAppend(&svg,
                  absl::StrFormat("<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n",
                                  kLeft + plot_w / 2, chart.height - 8, XmlEscape(chart.x_label)),
                  absl::StrFormat("<text transform=\"translate(14 %.1f) rotate(-90)\" "
                                  "text-anchor=\"middle\">%s</text>\n",
                                  kTop + plot_h / 2, XmlEscape(chart.y_label)));
  for (size_t s = 0; s < chart.series.size(); ++s) {
    const ChartSeries& series = chart.series[s];
    const char* colour = kColours[s % std::size(kColours)];
    std::string points;
    int drawn = 0;
    for (const auto& [x, y] : series.points) {
      if (!std::isfinite(x) || !std::isfinite(y)) continue;
      ++drawn;
      if (chart.markers_only) {
        absl::StrAppend(&points,
                        absl::StrFormat("<circle cx=\"%.2f\" cy=\"%.2f\" r=\"4\"/>", px(x), py(y)));
      } else {
        absl::StrAppend(&points, absl::StrFormat("%.2f,%.2f ", px(x), py(y)));
      }
    }
    const std::string name = XmlEscape(series.name);
    if (chart.markers_only) {
      absl::StrAppend(&svg, absl::StrFormat("<g class=\"markers\" data-series=\"%s\" "
                                            "data-points=\"%d\" fill=\"%s\">%s</g>\n",
                                            name, drawn, colour, points));
    } else {
      absl::StrAppend(&svg, absl::StrFormat("<polyline class=\"series\" data-series=\"%s\" "
                                            "data-points=\"%d\" fill=\"none\" stroke=\"%s\" "
                                            "stroke-width=\"1.5\" points=\"%s\"/>\n",
                                            name, drawn, colour, points));
    }
    absl::StrAppend(&svg, absl::StrFormat("<text class=\"legend\" x=\"%.1f\" y=\"%d\" "
                                          "text-anchor=\"end\" fill=\"%s\">%s</text>\n",
                                          kLeft + plot_w - 4, kTop + 14 + 14 * static_cast<int>(s),
                                          colour, name));
  }
  return svg + "</svg>\n";
}

}  // namespace dpfleet::dpctl
