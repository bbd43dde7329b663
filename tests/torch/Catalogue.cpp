// The catalogue formulas in libtorch. Notation of CATALOGUE.md: a_w, a_l policy log-probs,
// b_w, b_l reference log-probs, n_w, n_l lengths, r = a - b, rho = r_w - r_l, sp = softplus,
// m(n) = max(n, 1). Batch statistics are torch's (var and std unbiased).
#include "Catalogue.h"

#include <torch/torch.h>

namespace lossc::ref {

using torch::Tensor;

namespace {

// torch's softplus is linear above its threshold (20), off by e^-20 there: -log sigma(-z) is
// exact everywhere.
Tensor sp(const Tensor &z) {
  return -torch::log_sigmoid(-z);
}
Tensor logsig(const Tensor &z) {
  return torch::log_sigmoid(z);
}
// sigma(z) whose autograd derivative is sigma(z) sigma(-z); torch's sigmoid backward takes
// y (1 - y), which is 0 where y rounds to 1 (z above 37 in f64).
Tensor sig(const Tensor &z) {
  return torch::exp(torch::log_sigmoid(z));
}
Tensor m(const Tensor &n) {
  return torch::clamp_min(n, 1.0);
}
Tensor hingeOf(const Tensor &z) {
  return torch::clamp_min(z, 0.0);
} // max(0, z)
Tensor sortAsc(const Tensor &z) {
  return std::get<0>(torch::sort(z, /*stable=*/true, 0, false));
}

struct Pair {
  Tensor aw, al, bw, bl, nw, nl;
  Tensor rw() const { return aw - bw; }
  Tensor rl() const { return al - bl; }
  Tensor rho() const { return rw() - rl(); }
};

Pair unpack(Inputs kind, const std::vector<Tensor> &in) {
  Pair p;
  p.aw = in[0], p.al = in[1];
  if (kind == Inputs::ReferenceFree) {
    p.nw = in[2], p.nl = in[3];
    return p;
  }
  p.bw = in[2], p.bl = in[3];
  if (kind == Inputs::PairwiseLengths) p.nw = in[4], p.nl = in[5];
  return p;
}

// (1 - e) sp(-x) + e sp(x)
Tensor smoothed(const Tensor &x, double e) {
  return (1 - e) * sp(-x) + e * sp(x);
}

// x = beta rho, s = sigma(x / tau): (1 - s) sp(-x) + s e^-x, with s e^-x as
// exp(log sigma(x / tau) - x) and 1 - s as sigma(-x / tau) (CATALOGUE.md, "Numerics").
Tensor lrmlFormula(const Tensor &x, double tau) {
  return sig(-x / tau) * sp(-x) + torch::exp(logsig(x / tau) - x);
}

using P = std::vector<double>;

Entry pairwise(std::string name, std::vector<std::pair<std::string, double>> params, P other,
               std::function<Tensor(const Pair &, const P &)> f, bool coupled = false,
               int64_t minBatch = 1, Inputs kind = Inputs::Pairwise) {
  Formula formula = [kind, f](const std::vector<Tensor> &in, const P &p) {
    return f(unpack(kind, in), p);
  };
  bool sorts = coupled && minBatch == 1 && name.rfind("aot", 0) == 0;
  return {std::move(name), kind,   std::move(params), std::move(other), coupled, minBatch,
          sorts,           formula};
}

std::vector<Entry> build() {
  std::vector<Entry> c;
  const std::pair<std::string, double> beta01{"beta", 0.1}, beta005{"beta", 0.05}, tau{"tau", 0.05};
  // TRL DPOTrainer family.
  c.push_back(pairwise("dpo", {beta01}, {0.3},
                       [](const Pair &x, const P &p) { return sp(-p[0] * x.rho()); }));
  c.push_back(pairwise("cdpo", {beta01, {"label_smoothing", 0.1}}, {0.3, 0.25},
                       [](const Pair &x, const P &p) { return smoothed(p[0] * x.rho(), p[1]); }));
  c.push_back(pairwise("robust", {beta01, {"label_smoothing", 0.1}}, {0.3, 0.3},
                       [](const Pair &x, const P &p) {
                         Tensor z = p[0] * x.rho();
                         return ((1 - p[1]) * sp(-z) - p[1] * sp(z)) / (1 - 2 * p[1]);
                       }));
  c.push_back(pairwise("hinge", {beta01}, {0.3},
                       [](const Pair &x, const P &p) { return hingeOf(1 - p[0] * x.rho()); }));
  c.push_back(pairwise(
      "ipo", {beta01}, {0.3},
      [](const Pair &x, const P &p) {
        return torch::pow(x.rw() / m(x.nw) - x.rl() / m(x.nl) - 1 / (2 * p[0]), 2);
      },
      false, 1, Inputs::PairwiseLengths));
  c.push_back(pairwise(
      "exo_pair", {beta01, {"label_smoothing", 1e-3}}, {0.3, 0.2}, [](const Pair &x, const P &p) {
        Tensor z = p[0] * x.rho();
        Tensor q = sig(z);
        double e = p[1];
        return q * (logsig(z) - std::log(1 - e)) + (1 - q) * (logsig(-z) - std::log(e));
      }));
  c.push_back(pairwise("nca_pair", {beta01}, {0.3}, [](const Pair &x, const P &p) {
    Tensor w = p[0] * x.rw(), l = p[0] * x.rl();
    return sp(-w) + 0.5 * sp(w) + 0.5 * sp(l);
  }));
  c.push_back(pairwise("bco_pair", {beta01}, {0.3}, [](const Pair &x, const P &p) {
    return sp(-p[0] * x.rw()) + sp(p[0] * x.rl());
  }));
  c.push_back(pairwise("sppo_hard", {beta01}, {0.3}, [](const Pair &x, const P &p) {
    double h = 1 / (2 * p[0]);
    return torch::pow(x.rw() - h, 2) + torch::pow(x.rl() + h, 2);
  }));
  c.push_back(pairwise(
      "aot", {beta01, {"label_smoothing", 0.0}}, {0.3, 0.2},
      [](const Pair &x, const P &p) {
        Tensor d = sortAsc(x.aw - x.al) - sortAsc(x.bw - x.bl);
        return smoothed(p[0] * d, p[1]);
      },
      true));
  c.push_back(pairwise(
      "aot_unpaired", {beta01, {"label_smoothing", 0.0}}, {0.3, 0.2},
      [](const Pair &x, const P &p) {
        Tensor d = sortAsc(x.rw()) - sortAsc(x.rl());
        return smoothed(p[0] * d, p[1]);
      },
      true));
  c.push_back(pairwise("apo_zero", {beta01}, {0.3}, [](const Pair &x, const P &p) {
    return sig(-p[0] * x.rw()) + sig(p[0] * x.rl());
  }));
  c.push_back(pairwise("apo_down", {beta01}, {0.3}, [](const Pair &x, const P &p) {
    return sig(p[0] * x.rw()) + sig(-p[0] * x.rho());
  }));
  c.push_back(pairwise("discopop", {beta01, tau}, {0.3, 0.2}, [](const Pair &x, const P &p) {
    return lrmlFormula(p[0] * x.rho(), p[1]);
  }));
  c.push_back(pairwise(
      "sigmoid_norm", {beta01}, {0.3},
      [](const Pair &x, const P &p) { return sp(-p[0] * (x.rw() / m(x.nw) - x.rl() / m(x.nl))); },
      false, 1, Inputs::PairwiseLengths));
  // Reference-free.
  c.push_back(pairwise(
      "simpo", {beta01, {"gamma", 0.5}}, {0.3, 1.5},
      [](const Pair &x, const P &p) {
        return sp(-(p[0] * (x.aw / m(x.nw) - x.al / m(x.nl)) - p[1]));
      },
      false, 1, Inputs::ReferenceFree));
  c.push_back(pairwise(
      "orpo", {beta01}, {0.3},
      [](const Pair &x, const P &p) {
        Tensor uw = x.aw / m(x.nw), ul = x.al / m(x.nl);
        // log(1 - e^u) for u < 0, in torch's accurate form
        auto L = [](const Tensor &u) { return torch::log(-torch::expm1(u)); };
        Tensor odds = (uw - ul) - (L(uw) - L(ul));
        return -p[0] * logsig(odds);
      },
      false, 1, Inputs::ReferenceFree));
  // DiscoPOP discovered objectives.
  c.push_back(pairwise(
      "dbaql", {beta005, tau}, {0.3, 0.2},
      [](const Pair &x, const P &p) {
        Tensor z = p[0] * x.rho();
        Tensor v = torch::var(z / p[1]);
        // c sp(-z/0.9) + (1 - c) e^(-0.9 z), c = sigma(v); (1 - c) e^.. = exp(log sigma(-v) - 0.9
        // z)
        return sig(v) * sp(-z / 0.9) + torch::exp(logsig(-v) - 0.9 * z);
      },
      true, 2));
  c.push_back(pairwise(
      "aql", {beta005, tau}, {0.3, 0.2},
      [](const Pair &x, const P &p) {
        Tensor z = p[0] * x.rho();
        Tensor mm = 0.5 + 0.01 * (sig(torch::mean(z / p[1])) - 0.5);
        Tensor q = sig(mm - z / p[1]);
        return q * sp(-z) + (1 - q) * hingeOf(1 - z);
      },
      true));
  c.push_back(pairwise("padll", {beta005}, {0.3}, [](const Pair &x, const P &p) {
    Tensor rho = x.rho();
    Tensor indicator = (rho < 0).to(rho.scalar_type());
    return 0.9 * (1 - 0.5 * indicator) * sp(-p[0] * rho);
  }));
  c.push_back(pairwise(
      "aqfl", {beta005, tau}, {0.3, 0.2},
      [](const Pair &x, const P &p) {
        Tensor rho = x.rho();
        Tensor z = p[0] * rho / p[1];
        Tensor m1 = torch::std(z) * torch::mean(sig(-z));
        Tensor m2 = m1 + 0.05 * (sig(torch::mean(z)) - m1);
        Tensor r = sig(0.1 * torch::abs(z - m2));
        return r * sp(-p[0] * rho) + (1 - r) * hingeOf(1 - p[0] * rho);
      },
      true, 2));
  c.push_back(pairwise("cell", {beta005}, {0.3}, [](const Pair &x, const P &p) {
    Tensor z = p[0] * x.rho();
    // 0.5 e^-z as e^(-z + ln 0.5): finite wherever the product is (0.5 e^710 < DBL_MAX)
    return 0.5 * sp(-z) + torch::exp(-z + std::log(0.5));
  }));
  c.push_back(pairwise("lrml", {beta005, tau}, {0.3, 0.2}, [](const Pair &x, const P &p) {
    return lrmlFormula(p[0] * x.rho(), p[1]);
  }));
  c.push_back(pairwise("pfl", {beta005}, {0.3}, [](const Pair &x, const P &p) {
    Tensor z = p[0] * x.rho();
    return torch::where(x.aw > x.al, 0.5 * sp(-z), 2 * hingeOf(1 - z));
  }));
  return c;
}

} // namespace

std::vector<std::string> inputNames(Inputs inputs) {
  switch (inputs) {
  case Inputs::Pairwise:
    return {"policy_chosen_logps", "policy_rejected_logps", "reference_chosen_logps",
            "reference_rejected_logps"};
  case Inputs::PairwiseLengths:
    return {"policy_chosen_logps",      "policy_rejected_logps", "reference_chosen_logps",
            "reference_rejected_logps", "chosen_lengths",        "rejected_lengths"};
  case Inputs::ReferenceFree:
    return {"policy_chosen_logps", "policy_rejected_logps", "chosen_lengths", "rejected_lengths"};
  }
  return {};
}

const std::vector<Entry> &catalogue() {
  static const std::vector<Entry> c = build();
  return c;
}

const Entry &entry(const std::string &name) {
  for (const Entry &e : catalogue())
    if (e.name == name) return e;
  throw std::runtime_error("no catalogue entry " + name);
}

} // namespace lossc::ref
