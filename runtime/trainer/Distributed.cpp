#include "Distributed.h"

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <stdexcept>

namespace lossc::train {

struct Communicator::Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
};

namespace {
bool loopback(const std::string &host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
}
} // namespace

std::unique_ptr<Communicator> Communicator::connect(const DistributedConfig &config) {
  if (config.worldSize < 1 || config.rank < 0 || config.rank >= config.worldSize)
    throw std::invalid_argument("rank " + std::to_string(config.rank) +
                                " is not in a world of size " + std::to_string(config.worldSize));
  std::unique_ptr<Communicator> c(new Communicator);
  c->rank_ = config.rank;
  c->size_ = config.worldSize;
  c->group_ = std::make_unique<Group>();
  c10d::TCPStoreOptions so;
  so.port = config.masterPort;
  so.isServer = config.rank == 0;
  so.numWorkers = config.worldSize;
  so.waitWorkers = true;
  so.timeout = config.timeout;
  try {
    c->group_->store = c10::make_intrusive<c10d::TCPStore>(config.masterAddr, so);
    auto options = c10d::ProcessGroupGloo::Options::create();
    options->timeout = config.timeout;
    if (!config.interface.empty())
      options->devices.push_back(
          c10d::ProcessGroupGloo::createDeviceForInterface(config.interface));
    else if (loopback(config.masterAddr))
      options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    else
      options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    c->group_->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(c->group_->store, config.rank,
                                                                config.worldSize, options);
  } catch (const std::exception &e) {
    throw std::runtime_error("rank " + std::to_string(config.rank) +
                             " could not join the group at " + config.masterAddr + ":" +
                             std::to_string(config.masterPort) + ": " + e.what());
  }
  return c;
}

Communicator::~Communicator() = default;

void Communicator::allReduceSum(torch::Tensor &t) {
  std::vector<torch::Tensor> v{t};
  group_->pg->allreduce(v)->wait();
}

void Communicator::allReduceMax(torch::Tensor &t) {
  std::vector<torch::Tensor> v{t};
  c10d::AllreduceOptions o;
  o.reduceOp = c10d::ReduceOp::MAX;
  group_->pg->allreduce(v, o)->wait();
}

void Communicator::broadcast(torch::Tensor &t, int root) {
  std::vector<torch::Tensor> v{t};
  c10d::BroadcastOptions o;
  o.rootRank = root;
  group_->pg->broadcast(v, o)->wait();
}

void Communicator::barrier() {
  group_->pg->barrier()->wait();
}

} // namespace lossc::train
