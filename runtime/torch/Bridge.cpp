// LossFunction: torch::autograd::Function over a rt::Loss. The loss travels in the context as
// a capsule; inputs are saved for backward, which calls the fused forward+backward kernel with
// the incoming cotangent.
#include "lossc/torch.h"

#include <torch/torch.h>

namespace lossc::rt {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct LossHolder : torch::CustomClassHolder {
  explicit LossHolder(std::shared_ptr<const Loss> l) : loss(std::move(l)) {}
  std::shared_ptr<const Loss> loss;
};

template <class T> std::vector<const T *> pointers(const std::vector<at::Tensor> &ts) {
  std::vector<const T *> p;
  for (const at::Tensor &t : ts)
    p.push_back(t.data_ptr<T>());
  return p;
}

// Checks the tensors against the loss and returns them contiguous.
std::vector<at::Tensor> prepare(const Loss &loss, at::TensorList inputs) {
  const std::string where = "loss '" + loss.name() + "': ";
  if (inputs.size() != loss.inputs().size())
    throw Error(where + "expected " + std::to_string(loss.inputs().size()) +
                " input tensors, got " + std::to_string(inputs.size()));
  std::vector<at::Tensor> out;
  int64_t n = -1;
  at::ScalarType dtype = at::kFloat;
  for (size_t k = 0; k < inputs.size(); ++k) {
    const at::Tensor &t = inputs[k];
    const std::string what = where + "input '" + loss.inputs()[k].name + "' ";
    if (!t.defined()) throw Error(what + "is an undefined tensor");
    if (!t.device().is_cpu())
      throw Error(what + "is on " + t.device().str() + "; lossc kernels run on the CPU");
    if (t.scalar_type() != at::kFloat && t.scalar_type() != at::kDouble)
      throw Error(what + "has dtype " + std::string(c10::toString(t.scalar_type())) +
                  "; use float32 or float64");
    if (t.dim() != 1)
      throw Error(what + "has " + std::to_string(t.dim()) +
                  " dimensions; expected one value per example (1-D)");
    if (k == 0) {
      n = t.size(0);
      dtype = t.scalar_type();
    } else if (t.scalar_type() != dtype) {
      throw Error(what + "is " + std::string(c10::toString(t.scalar_type())) + " but '" +
                  loss.inputs()[0].name + "' is " + std::string(c10::toString(dtype)) +
                  "; all inputs must share one dtype");
    } else if (t.size(0) != n) {
      throw Error(what + "has " + std::to_string(t.size(0)) + " values but '" +
                  loss.inputs()[0].name + "' has " + std::to_string(n) +
                  "; all inputs must have one value per example");
    }
    if (t.requires_grad() && !loss.inputs()[k].differentiable)
      throw Error(what + "requires grad, but the loss is not differentiable in it (it is not "
                         "declared diff)");
    out.push_back(t.detach().contiguous());
  }
  return out;
}

struct LossFunction : torch::autograd::Function<LossFunction> {
  static at::Tensor forward(AutogradContext *ctx, at::TensorList inputs, LossHolder *holder,
                            std::vector<double> params, int64_t threads) {
    const Loss &loss = *holder->loss;
    std::vector<at::Tensor> in = prepare(loss, inputs);
    int64_t n = in[0].size(0);
    at::Tensor out = at::empty({n}, in[0].options());
    const double *p = params.empty() ? nullptr : params.data();
    if (out.scalar_type() == at::kFloat)
      loss.forward<float>(n, pointers<float>(in).data(), p, out.data_ptr<float>(), threads);
    else
      loss.forward<double>(n, pointers<double>(in).data(), p, out.data_ptr<double>(), threads);
    ctx->save_for_backward(in);
    ctx->saved_data["loss"] =
        c10::IValue::make_capsule(c10::intrusive_ptr<LossHolder>::reclaim_copy(holder));
    ctx->saved_data["params"] = params;
    ctx->saved_data["threads"] = threads;
    return out;
  }

  static variable_list backward(AutogradContext *ctx, variable_list gradOutputs) {
    if (torch::GradMode::is_enabled())
      throw Error("double backward through a lossc loss is not supported: its kernel gives the "
                  "first derivative only (call backward without create_graph)");
    auto holder =
        c10::static_intrusive_pointer_cast<LossHolder>(ctx->saved_data["loss"].toCapsule());
    const Loss &loss = *holder->loss;
    std::vector<double> params = ctx->saved_data["params"].toDoubleVector();
    int threads = static_cast<int>(ctx->saved_data["threads"].toInt());
    variable_list in = ctx->get_saved_variables();
    int64_t n = in[0].size(0);
    at::Tensor gout = gradOutputs[0].to(in[0].scalar_type()).contiguous();
    variable_list grads(in.size() + 3);
    std::vector<at::Tensor> gradBuffers(in.size());
    for (size_t k = 0; k < in.size(); ++k)
      if (loss.inputs()[k].differentiable && ctx->needs_input_grad(k))
        grads[k] = gradBuffers[k] = at::empty({n}, in[0].options());
    const double *p = params.empty() ? nullptr : params.data();
    auto run = [&](auto zero) {
      using T = decltype(zero);
      std::vector<T *> g;
      for (const at::Tensor &t : gradBuffers)
        g.push_back(t.defined() ? t.data_ptr<T>() : nullptr);
      loss.forwardBackward<T>(n, pointers<T>(in).data(), p, gout.data_ptr<T>(), nullptr, g.data(),
                              threads);
    };
    if (in[0].scalar_type() == at::kFloat)
      run(float{});
    else
      run(double{});
    return grads;
  }
};

} // namespace

at::Tensor apply(const std::shared_ptr<const Loss> &loss, const std::vector<at::Tensor> &inputs,
                 const std::vector<double> &params, int threads) {
  if (!loss) throw Error("lossc::rt::apply: no loss");
  if (!params.empty() && params.size() != loss->params().size())
    throw Error("loss '" + loss->name() + "' takes " + std::to_string(loss->params().size()) +
                " parameters, got " + std::to_string(params.size()) + " (see Loss::bindParams)");
  auto holder = c10::make_intrusive<LossHolder>(loss);
  return LossFunction::apply(at::TensorList(inputs), holder.get(), params, int64_t{threads});
}

at::Tensor apply(const std::shared_ptr<const Loss> &loss,
                 const std::map<std::string, at::Tensor> &inputs, const std::vector<double> &params,
                 int threads) {
  if (!loss) throw Error("lossc::rt::apply: no loss");
  std::vector<at::Tensor> ordered;
  for (const InputInfo &in : loss->inputs()) {
    auto it = inputs.find(in.name);
    if (it == inputs.end())
      throw Error("loss '" + loss->name() + "' needs the input '" + in.name + "'");
    ordered.push_back(it->second);
  }
  for (const auto &[name, t] : inputs)
    if (loss->inputIndex(name) < 0)
      throw Error("loss '" + loss->name() + "' has no input '" + name + "'");
  return apply(loss, ordered, params, threads);
}

} // namespace lossc::rt
