// SVG plots, self-contained (no scripts, no external resources), in one style: `lossc plot`
// (losses and their gradients against the margin, two panels, several losses overlaid, as in
// the DiscoPOP paper's figures) and the trainer's reward-KL frontier.
#pragma once

#include <string>
#include <vector>

namespace lossc {

struct PlotSeries {
  std::string label;
  std::vector<double> value, slope; // at the plot's margins
};

// A self-contained SVG document (no scripts, no external resources).
std::string renderPlotSvg(const std::string &title, const std::vector<double> &rho,
                          const std::vector<PlotSeries> &series);

struct FrontierPoint {
  double x, y;
  std::string label; // drawn beside the point ("" for none)
};
struct FrontierSeries {
  std::string label;
  std::vector<FrontierPoint> points; // joined in this order
  std::vector<FrontierPoint> runs;   // drawn as small hollow circles (e.g. single seeds)
};

// A scatter of labelled points joined per series (the reward-KL frontier of a beta sweep), with
// an optional baseline point drawn as a black square.
std::string renderFrontierSvg(const std::string &title, const std::string &subtitle,
                              const std::string &xlabel,
                              const std::string &ylabel, const std::vector<FrontierSeries> &series,
                              const FrontierPoint *baseline = nullptr);

} // namespace lossc
