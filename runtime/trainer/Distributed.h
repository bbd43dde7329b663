// Data parallelism over processes: a process group of libtorch's c10d with the Gloo backend,
// met through a TCPStore rendezvous (rank 0 hosts the store at host:port). The c10d headers stay
// in Distributed.cpp.
#pragma once

#include <torch/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace lossc::train {

struct DistributedConfig {
  int rank = 0, worldSize = 1;
  std::string masterAddr = "127.0.0.1"; // where rank 0 hosts the TCPStore
  uint16_t masterPort = 29500;
  std::string interface; // network interface for Gloo ("" = by address)
  std::chrono::seconds timeout{120};
};

class Communicator {
public:
  // Joins the group; blocks until every rank has joined (or throws after the timeout).
  static std::unique_ptr<Communicator> connect(const DistributedConfig &config);
  ~Communicator();

  int rank() const { return rank_; }
  int size() const { return size_; }
  // In place, across all ranks.
  void allReduceSum(torch::Tensor &t);
  void allReduceMax(torch::Tensor &t);
  void broadcast(torch::Tensor &t, int root = 0);
  void barrier();

private:
  struct Group;
  Communicator() = default;
  std::unique_ptr<Group> group_;
  int rank_ = 0, size_ = 1;
};

} // namespace lossc::train
