// compare_policies A.pt B.pt TOLERANCE: loads two policies saved by lossc-train and prints the
// largest absolute difference of their parameters and the largest parameter magnitude; exits 0
// when the difference is at most TOLERANCE, 1 otherwise (2 on bad usage).
#include <torch/torch.h>

#include <cstdlib>
#include <iostream>

#include "EmbeddedTask.h"

int main(int argc, char **argv) {
  if (argc != 4) {
    std::cerr << "usage: compare_policies A.pt B.pt TOLERANCE\n";
    return 2;
  }
  using lossc::train::CausalLm;
  using lossc::train::ModelConfig;
  CausalLm a(ModelConfig{}), b(ModelConfig{});
  torch::load(a, argv[1]);
  torch::load(b, argv[2]);
  double diff = 0, scale = 0;
  auto pb = b->named_parameters();
  for (const auto &p : a->named_parameters()) {
    diff = std::max(diff, (p.value() - pb[p.key()]).abs().max().item<double>());
    scale = std::max(scale, p.value().abs().max().item<double>());
  }
  std::cout << "largest parameter difference " << diff << " (largest parameter " << scale << ")\n";
  return diff <= std::atof(argv[3]) ? 0 : 1;
}
