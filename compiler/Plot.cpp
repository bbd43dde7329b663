// SVG of loss curves: two stacked panels sharing the margin axis, "nice" tick steps, a legend.
// Non-finite samples break a curve's line instead of being drawn.
#include "Plot.h"

#include "lossc/text.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace lossc {

namespace {

const char *kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                         "#9467bd", "#8c564b", "#e377c2", "#17becf"};

// Coordinates and tick labels: 4 significant digits, rounding residue near 0 shown as 0.
std::string fmt(double v) {
  return formatSignificant(std::fabs(v) < 1e-12 ? 0.0 : v, 4);
}

std::string escape(const std::string &s) {
  std::string out;
  for (char c : s) {
    if (c == '<')
      out += "&lt;";
    else if (c == '>')
      out += "&gt;";
    else if (c == '&')
      out += "&amp;";
    else if (c == '"')
      out += "&quot;";
    else
      out += c;
  }
  return out;
}

// A tick step of 1, 2 or 5 times a power of ten giving about 6 ticks.
double niceStep(double span) {
  double raw = span / 6, p = std::pow(10, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * p >= raw) return m * p;
  return 10 * p;
}

struct Panel {
  double x0, y0, w, h; // pixels
  double xmin, xmax, ymin, ymax;
  double px(double x) const { return x0 + (x - xmin) / (xmax - xmin) * w; }
  double py(double y) const { return y0 + h - (y - ymin) / (ymax - ymin) * h; }
};

void axes(std::string &svg, const Panel &p, const std::string &ylabel, bool xlabels) {
  svg += "<rect x=\"" + fmt(p.x0) + "\" y=\"" + fmt(p.y0) + "\" width=\"" + fmt(p.w) +
         "\" height=\"" + fmt(p.h) + "\" fill=\"none\" stroke=\"#444\"/>\n";
  double sx = niceStep(p.xmax - p.xmin), sy = niceStep(p.ymax - p.ymin);
  for (double x = std::ceil(p.xmin / sx) * sx; x <= p.xmax + 1e-9 * sx; x += sx) {
    svg += "<line x1=\"" + fmt(p.px(x)) + "\" y1=\"" + fmt(p.y0) + "\" x2=\"" + fmt(p.px(x)) +
           "\" y2=\"" + fmt(p.y0 + p.h) + "\" stroke=\"#ddd\"/>\n";
    if (xlabels)
      svg += "<text x=\"" + fmt(p.px(x)) + "\" y=\"" + fmt(p.y0 + p.h + 16) +
             "\" text-anchor=\"middle\">" + fmt(x) + "</text>\n";
  }
  for (double y = std::ceil(p.ymin / sy) * sy; y <= p.ymax + 1e-9 * sy; y += sy) {
    svg += "<line x1=\"" + fmt(p.x0) + "\" y1=\"" + fmt(p.py(y)) + "\" x2=\"" + fmt(p.x0 + p.w) +
           "\" y2=\"" + fmt(p.py(y)) + "\" stroke=\"#ddd\"/>\n";
    svg += "<text x=\"" + fmt(p.x0 - 6) + "\" y=\"" + fmt(p.py(y) + 4) + "\" text-anchor=\"end\">" +
           fmt(y) + "</text>\n";
  }
  if (p.ymin < 0 && p.ymax > 0)
    svg += "<line x1=\"" + fmt(p.x0) + "\" y1=\"" + fmt(p.py(0)) + "\" x2=\"" + fmt(p.x0 + p.w) +
           "\" y2=\"" + fmt(p.py(0)) + "\" stroke=\"#888\"/>\n";
  if (p.xmin < 0 && p.xmax > 0)
    svg += "<line x1=\"" + fmt(p.px(0)) + "\" y1=\"" + fmt(p.y0) + "\" x2=\"" + fmt(p.px(0)) +
           "\" y2=\"" + fmt(p.y0 + p.h) + "\" stroke=\"#888\"/>\n";
  svg += "<text transform=\"translate(" + fmt(p.x0 - 52) + "," + fmt(p.y0 + p.h / 2) +
         ") rotate(-90)\" text-anchor=\"middle\">" + escape(ylabel) + "</text>\n";
}

void curve(std::string &svg, const Panel &p, const std::vector<double> &x,
           const std::vector<double> &y, const char *color) {
  std::string path;
  bool pen = false;
  for (size_t i = 0; i < x.size(); ++i) {
    if (!std::isfinite(y[i]) || y[i] < p.ymin - (p.ymax - p.ymin) ||
        y[i] > p.ymax + (p.ymax - p.ymin)) {
      pen = false;
      continue;
    }
    double yc =
        std::clamp(y[i], p.ymin - 0.02 * (p.ymax - p.ymin), p.ymax + 0.02 * (p.ymax - p.ymin));
    path += (pen ? " L" : " M") + fmt(p.px(x[i])) + "," + fmt(p.py(yc));
    pen = true;
  }
  svg += "<path d=\"" + path + "\" fill=\"none\" stroke=\"" + color +
         "\" stroke-width=\"2\" clip-path=\"url(#c" + std::to_string(int(p.y0)) + ")\"/>\n";
}

// The range of the finite values, padded; robust to a few huge ones (5th/95th percentiles
// widened), so that one exponential tail does not flatten every curve.
std::pair<double, double> yRange(const std::vector<PlotSeries> &series, bool slope) {
  std::vector<double> all;
  for (const PlotSeries &s : series)
    for (double v : slope ? s.slope : s.value)
      if (std::isfinite(v)) all.push_back(v);
  if (all.empty()) return {-1, 1};
  std::sort(all.begin(), all.end());
  double lo = all[all.size() / 20], hi = all[all.size() - 1 - all.size() / 20];
  lo = std::min(lo, all.front() < lo - 3 * (hi - lo) ? lo : all.front());
  hi = std::max(hi, all.back() > hi + 3 * (hi - lo) ? hi : all.back());
  if (hi - lo < 1e-12) lo -= 1, hi += 1;
  double pad = 0.08 * (hi - lo);
  return {lo - pad, hi + pad};
}

std::string header(double W, double H, const std::string &title) {
  std::string w = fmt(W), h = fmt(H);
  return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
         "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" +
         w + "\" height=\"" + h + "\" viewBox=\"0 0 " + w + " " + h +
         "\" font-family=\"sans-serif\" font-size=\"12\">\n"
         "<rect width=\"" +
         w + "\" height=\"" + h +
         "\" fill=\"white\"/>\n"
         "<text x=\"" +
         fmt(W / 2) + "\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">" + escape(title) +
         "</text>\n";
}

void clipPath(std::string &svg, const Panel &p) {
  svg += "<clipPath id=\"c" + std::to_string(int(p.y0)) + "\"><rect x=\"" + fmt(p.x0) + "\" y=\"" +
         fmt(p.y0) + "\" width=\"" + fmt(p.w) + "\" height=\"" + fmt(p.h) + "\"/></clipPath>\n";
}

void legendEntry(std::string &svg, double x, double y, const char *color,
                 const std::string &label) {
  svg += "<line x1=\"" + fmt(x) + "\" y1=\"" + fmt(y - 4) + "\" x2=\"" + fmt(x + 24) + "\" y2=\"" +
         fmt(y - 4) + "\" stroke=\"" + color + "\" stroke-width=\"3\"/>\n<text x=\"" + fmt(x + 30) +
         "\" y=\"" + fmt(y) + "\">" + escape(label) + "</text>\n";
}

// [lo, hi] of the values, padded by `pad` of the span (a unit span around a single value).
std::pair<double, double> padded(std::vector<double> v, double pad) {
  double lo = *std::min_element(v.begin(), v.end()), hi = *std::max_element(v.begin(), v.end());
  if (hi - lo < 1e-12) lo -= 0.5, hi += 0.5;
  return {lo - pad * (hi - lo), hi + pad * (hi - lo)};
}

} // namespace

std::string renderPlotSvg(const std::string &title, const std::vector<double> &rho,
                          const std::vector<PlotSeries> &series) {
  const double W = 760, H = 620;
  std::string svg = header(W, H, title);
  double xmin = rho.front(), xmax = rho.back();
  auto [v0, v1] = yRange(series, false);
  auto [s0, s1] = yRange(series, true);
  Panel top{80, 50, W - 110, 230, xmin, xmax, v0, v1};
  Panel bottom{80, 320, W - 110, 230, xmin, xmax, s0, s1};
  clipPath(svg, top);
  clipPath(svg, bottom);
  axes(svg, top, "loss", false);
  axes(svg, bottom, "dL / d rho", true);
  svg += "<text x=\"" + fmt(top.x0 + top.w / 2) + "\" y=\"" + fmt(H - 30) +
         "\" text-anchor=\"middle\">margin rho = (log pi_w - log ref_w) - (log pi_l - log "
         "ref_l)</text>\n";
  for (size_t k = 0; k < series.size(); ++k) {
    const char *color = kColors[k % (sizeof kColors / sizeof *kColors)];
    curve(svg, top, rho, series[k].value, color);
    curve(svg, bottom, rho, series[k].slope, color);
    legendEntry(svg, top.x0 + top.w - 250, top.y0 + 14 + 18 * k, color, series[k].label);
  }
  svg += "</svg>\n";
  return svg;
}

std::string renderFrontierSvg(const std::string &title, const std::string &subtitle,
                              const std::string &xlabel, const std::string &ylabel,
                              const std::vector<FrontierSeries> &series,
                              const FrontierPoint *baseline) {
  const double W = 760, H = 520;
  std::vector<double> xs, ys;
  for (const FrontierSeries &s : series)
    for (const auto *points : {&s.points, &s.runs})
      for (const FrontierPoint &p : *points)
        if (std::isfinite(p.x) && std::isfinite(p.y)) xs.push_back(p.x), ys.push_back(p.y);
  if (baseline) xs.push_back(baseline->x), ys.push_back(baseline->y);
  if (xs.empty()) xs.push_back(0), ys.push_back(0);
  auto [x0, x1] = padded(xs, 0.06);
  auto [y0, y1] = padded(ys, 0.1);
  Panel p{80, 56, W - 110, H - 116, x0, x1, y0, y1};
  std::string svg = header(W, H, title);
  svg += "<text x=\"" + fmt(W / 2) + "\" y=\"42\" text-anchor=\"middle\" fill=\"#555\">" +
         escape(subtitle) + "</text>\n";
  clipPath(svg, p);
  axes(svg, p, ylabel, true);
  svg += "<text x=\"" + fmt(p.x0 + p.w / 2) + "\" y=\"" + fmt(H - 18) +
         "\" text-anchor=\"middle\">" + escape(xlabel) + "</text>\n";
  for (size_t k = 0; k < series.size(); ++k) {
    const char *color = kColors[k % (sizeof kColors / sizeof *kColors)];
    std::vector<double> x, y;
    for (const FrontierPoint &q : series[k].points)
      x.push_back(q.x), y.push_back(q.y);
    curve(svg, p, x, y, color);
    for (const FrontierPoint &q : series[k].runs)
      if (std::isfinite(q.x) && std::isfinite(q.y))
        svg += "<circle cx=\"" + fmt(p.px(q.x)) + "\" cy=\"" + fmt(p.py(q.y)) +
               "\" r=\"2.5\" fill=\"none\" stroke-opacity=\"0.6\" stroke=\"" + color + "\"/>\n";
    for (const FrontierPoint &q : series[k].points) {
      if (!std::isfinite(q.x) || !std::isfinite(q.y)) continue;
      svg += "<circle cx=\"" + fmt(p.px(q.x)) + "\" cy=\"" + fmt(p.py(q.y)) + "\" r=\"4\" fill=\"" +
             color + "\"/>\n";
      if (!q.label.empty())
        svg += "<text x=\"" + fmt(p.px(q.x) + 6) + "\" y=\"" + fmt(p.py(q.y) - 6) +
               "\" font-size=\"10\" fill=\"" + color + "\">" + escape(q.label) + "</text>\n";
    }
    legendEntry(svg, p.x0 + p.w - 170, p.y0 + p.h - 16 - 18 * (series.size() - 1 - k), color,
                series[k].label);
  }
  if (baseline) {
    svg += "<rect x=\"" + fmt(p.px(baseline->x) - 5) + "\" y=\"" + fmt(p.py(baseline->y) - 5) +
           "\" width=\"10\" height=\"10\" fill=\"black\"/>\n<text x=\"" +
           fmt(p.px(baseline->x) + 8) + "\" y=\"" + fmt(p.py(baseline->y) + 4) + "\">" +
           escape(baseline->label) + "</text>\n";
  }
  svg += "</svg>\n";
  return svg;
}

} // namespace lossc
