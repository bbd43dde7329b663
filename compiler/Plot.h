// `lossc plot`: losses and their gradients against the margin, as one SVG with two panels
// (loss above, dL/drho below), several losses overlaid, as in the DiscoPOP paper's figures.
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

} // namespace lossc
