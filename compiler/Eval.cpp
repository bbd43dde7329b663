// lossc eval: CSV in, kernel, CSV out.
#include "Eval.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "Backend.h"

namespace lossc {

namespace {
std::vector<std::string> splitCsv(const std::string &line) {
  std::vector<std::string> cells;
  std::string cell;
  std::stringstream ss(line);
  while (std::getline(ss, cell, ',')) {
    size_t b = cell.find_first_not_of(" \t\r"), e = cell.find_last_not_of(" \t\r");
    cells.push_back(b == std::string::npos ? "" : cell.substr(b, e - b + 1));
  }
  if (!line.empty() && line.back() == ',') cells.push_back("");
  return cells;
}

bool parseNumber(const std::string &s, double &v) {
  if (s.empty()) return false;
  char *end = nullptr;
  errno = 0;
  v = std::strtod(s.c_str(), &end);
  return end && *end == '\0';
}

std::string number(double v, bool f32) {
  char buf[40];
  std::snprintf(buf, sizeof buf, f32 ? "%.9g" : "%.17g", v);
  return buf;
}
} // namespace

int runEval(Frontend &fe, const EvalOptions &options, std::string &out, std::string &error) {
  if (!fe.ok()) return 1;
  const LossIr &ir = *fe.ir;

  std::vector<double> params;
  for (const IrParam &p : ir.params)
    params.push_back(p.defaultValue);
  for (const std::string &kv : options.params) {
    std::pair<std::string, double> setting;
    if (!parseSetting(kv, setting)) {
      error = "--param takes NAME=VALUE, got '" + kv + "'";
      return 2;
    }
    const auto &[name, v] = setting;
    size_t k = 0;
    while (k < ir.params.size() && ir.params[k].name != name)
      ++k;
    if (k == ir.params.size()) {
      std::string names;
      for (const IrParam &p : ir.params)
        names += (names.empty() ? "" : ", ") + p.name;
      error = "loss '" + ir.name + "' has no parameter '" + name +
              "' (it has: " + (names.empty() ? "none" : names) + ")";
      return 2;
    }
    params[k] = v;
  }

  std::ifstream in(options.csvPath);
  if (!in) {
    error = "cannot read '" + options.csvPath + "'";
    return 1;
  }
  std::string line;
  if (!std::getline(in, line)) {
    error = options.csvPath + ": empty file; the first line names the inputs";
    return 1;
  }
  std::vector<std::string> header = splitCsv(line);
  std::vector<int> column(ir.inputs.size(), -1);
  for (size_t k = 0; k < ir.inputs.size(); ++k)
    for (size_t c = 0; c < header.size(); ++c)
      if (header[c] == ir.inputs[k].name) column[k] = static_cast<int>(c);
  for (size_t k = 0; k < ir.inputs.size(); ++k)
    if (column[k] < 0) {
      error = options.csvPath + ":1: no column '" + ir.inputs[k].name + "' (every input needs one)";
      return 1;
    }
  std::vector<std::vector<double>> columns(ir.inputs.size());
  for (size_t row = 2; std::getline(in, line); ++row) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    std::vector<std::string> cells = splitCsv(line);
    if (cells.size() != header.size()) {
      error = options.csvPath + ":" + std::to_string(row) + ": " + std::to_string(cells.size()) +
              " values, but the header has " + std::to_string(header.size());
      return 1;
    }
    for (size_t k = 0; k < ir.inputs.size(); ++k) {
      double v;
      if (!parseNumber(cells[column[k]], v)) {
        error = options.csvPath + ":" + std::to_string(row) + ": '" + cells[column[k]] +
                "' is not a number (column " + ir.inputs[k].name + ")";
        return 1;
      }
      columns[k].push_back(v);
    }
  }
  int64_t n = columns.empty() ? 0 : static_cast<int64_t>(columns[0].size());

  std::unique_ptr<JitLoss> loss = JitLoss::compile(fe);
  if (!loss) return 1;
  const LossFunctions &f = loss->functions();

  size_t nIn = ir.inputs.size();
  std::vector<double> lossOut(static_cast<size_t>(std::max<int64_t>(n, 1)));
  std::vector<std::vector<double>> gradOut(nIn);
  for (size_t k = 0; k < nIn; ++k)
    gradOut[k].assign(ir.inputs[k].shape == Shape::Batch ? lossOut.size() : 1, 0.0);
  int32_t status;
  if (options.f32) {
    std::vector<std::vector<float>> fin(nIn), fgrad(nIn);
    std::vector<const float *> inPtrs;
    std::vector<float *> gradPtrs;
    for (size_t k = 0; k < nIn; ++k) {
      fin[k].assign(columns[k].begin(), columns[k].end());
      if (fin[k].empty()) fin[k].push_back(0);
      fgrad[k].assign(gradOut[k].size(), 0.0f);
      inPtrs.push_back(fin[k].data());
      gradPtrs.push_back(fgrad[k].data());
    }
    std::vector<float> fout(lossOut.size());
    status = f.forwardBackwardF32(n, inPtrs.data(), params.data(), nullptr, fout.data(),
                                  gradPtrs.data());
    lossOut.assign(fout.begin(), fout.end());
    for (size_t k = 0; k < nIn; ++k)
      gradOut[k].assign(fgrad[k].begin(), fgrad[k].end());
  } else {
    std::vector<const double *> inPtrs;
    std::vector<double *> gradPtrs;
    for (size_t k = 0; k < nIn; ++k) {
      if (columns[k].empty()) columns[k].push_back(0);
      inPtrs.push_back(columns[k].data());
      gradPtrs.push_back(gradOut[k].data());
    }
    status = f.forwardBackwardF64(n, inPtrs.data(), params.data(), nullptr, lossOut.data(),
                                  gradPtrs.data());
  }
  if (status != 0) {
    error = std::string("the kernel refused the call: ") + f.statusMessage(status) +
            (status == 1 ? " (n = " + std::to_string(n) +
                               ", min_batch = " + std::to_string(ir.minBatch) + ")"
                         : "");
    return 1;
  }
  out += "index,loss";
  for (size_t k = 0; k < nIn; ++k)
    if (ir.inputs[k].differentiable) out += ",grad_" + ir.inputs[k].name;
  out += '\n';
  for (int64_t i = 0; i < n; ++i) {
    out += std::to_string(i) + "," + number(lossOut[i], options.f32);
    for (size_t k = 0; k < nIn; ++k)
      if (ir.inputs[k].differentiable)
        out += "," + number(gradOut[k][ir.inputs[k].shape == Shape::Batch ? i : 0], options.f32);
    out += '\n';
  }
  return 0;
}

} // namespace lossc
