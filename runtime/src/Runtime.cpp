// Loading and verifying compiled losses, parameter binding, the threaded runner.
#include "lossc/runtime.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <dlfcn.h>
#include <elf.h>
#include <fstream>
#include <sstream>
#include <sys/stat.h>
#include <thread>

#include "lossc/sha256.h"
#include "lossc/text.h"

namespace lossc::rt {

namespace {

// The metadata stores an open bound as the next double inside it: (0, inf) is
// [4.9e-324, inf]. Shown as the user wrote it: a bound whose neighbour outside it has a
// shorter text is open.
std::string rangeText(const ParamInfo &p) {
  auto bound = [](double v, double outward, char closed, char open) {
    std::string text = formatShortest(v);
    if (!std::isfinite(v)) return std::make_pair(text, open);
    std::string outText = formatShortest(std::nextafter(v, outward));
    if (outText.size() < text.size()) return std::make_pair(outText, open);
    return std::make_pair(text, closed);
  };
  auto [lo, lb] = bound(p.min, -HUGE_VAL, '[', '(');
  auto [hi, hb] = bound(p.max, HUGE_VAL, ']', ')');
  return std::string(1, lb) + lo + ", " + hi + hb;
}

bool isIdentifier(const char *s) {
  if (!s || !*s || std::strlen(s) > 256) return false;
  for (const char *c = s; *c; ++c)
    if (!(std::isalnum(static_cast<unsigned char>(*c)) || *c == '_')) return false;
  return !std::isdigit(static_cast<unsigned char>(*s));
}

bool isHexDigest(const char *s) {
  if (!s || std::strlen(s) != 64) return false;
  for (const char *c = s; *c; ++c)
    if (!std::isxdigit(static_cast<unsigned char>(*c)) ||
        std::isupper(static_cast<unsigned char>(*c)))
      return false;
  return true;
}

// dlopen() maps a file's segments as its program headers say; a segment past the end of a
// truncated file is mapped all the same and faults (SIGBUS) when touched. So the headers are
// checked against the file first: a 64-bit ELF shared object for this machine whose program
// headers, loadable segments and section headers all lie within the file.
std::string elfProblem(const std::string &path, off_t size) {
  std::ifstream f(path, std::ios::binary);
  Elf64_Ehdr eh;
  if (!f.read(reinterpret_cast<char *>(&eh), sizeof eh) ||
      std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0)
    return "it is not an ELF file";
  if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB ||
      eh.e_machine != EM_X86_64)
    return "it is an ELF file for another machine";
  if (eh.e_type != ET_DYN) return "it is an ELF file but not a shared object";
  auto within = [&](uint64_t offset, uint64_t bytes) {
    return offset <= uint64_t(size) && bytes <= uint64_t(size) - offset;
  };
  if (eh.e_phentsize != sizeof(Elf64_Phdr) ||
      !within(eh.e_phoff, uint64_t(eh.e_phnum) * sizeof(Elf64_Phdr)))
    return "its program headers lie outside the file (truncated?)";
  if (eh.e_shnum && !within(eh.e_shoff, uint64_t(eh.e_shnum) * eh.e_shentsize))
    return "its section headers lie outside the file (truncated?)";
  f.seekg(eh.e_phoff);
  for (unsigned i = 0; i < eh.e_phnum; ++i) {
    Elf64_Phdr ph;
    if (!f.read(reinterpret_cast<char *>(&ph), sizeof ph))
      return "its program headers are unreadable";
    if (ph.p_type == PT_LOAD && !within(ph.p_offset, ph.p_filesz))
      return "a loadable segment lies outside the file (truncated?)";
  }
  return "";
}

// Slices smaller than this are not worth a thread.
constexpr int64_t kMinSlice = 1 << 15;

} // namespace

void Loss::readMeta(const std::string &origin) {
  auto bad = [&](const std::string &why) -> Error {
    return Error("'" + origin + "' has malformed lossc metadata: " + why);
  };
  const lossc_meta *m = fns_.getMeta();
  if (!m) throw bad("lossc_get_meta returned NULL");
  if (m->abi_version != LOSSC_ABI_VERSION)
    throw Error("'" + origin + "' was built for lossc ABI version " +
                std::to_string(m->abi_version) + "; this runtime reads version " +
                std::to_string(LOSSC_ABI_VERSION) + ": recompile it with this lossc");
  if (!isIdentifier(m->name)) throw bad("the loss name is missing or not an identifier");
  if (!isHexDigest(m->source_sha256)) throw bad("source_sha256 is not 64 lowercase hex digits");
  if (!m->compiler_version || !*m->compiler_version) throw bad("no compiler_version");
  if (m->n_inputs == 0 || m->n_inputs > 64 || !m->inputs)
    throw bad("n_inputs is " + std::to_string(m->n_inputs) + " (1 to 64, with a table)");
  if (m->n_params > 64 || (m->n_params && !m->params))
    throw bad("n_params is " + std::to_string(m->n_params) + " (0 to 64, with a table)");
  if (m->min_batch < 1) throw bad("min_batch is " + std::to_string(m->min_batch));
  if (m->batch_coupled != 0 && m->batch_coupled != 1) throw bad("batch_coupled is not 0 or 1");
  name_ = m->name;
  sha256_ = m->source_sha256;
  compilerVersion_ = m->compiler_version;
  batchCoupled_ = m->batch_coupled == 1;
  minBatch_ = m->min_batch;
  bool anyDiff = false;
  for (uint32_t k = 0; k < m->n_inputs; ++k) {
    const lossc_input_info &in = m->inputs[k];
    if (!isIdentifier(in.name)) throw bad("input " + std::to_string(k) + " has no valid name");
    if (inputIndex(in.name) >= 0) throw bad("input '" + std::string(in.name) + "' appears twice");
    inputs_.push_back({in.name, in.differentiable != 0});
    anyDiff |= in.differentiable != 0;
  }
  if (!anyDiff) throw bad("no differentiable input");
  for (uint32_t k = 0; k < m->n_params; ++k) {
    const lossc_param_info &p = m->params[k];
    if (!isIdentifier(p.name)) throw bad("parameter " + std::to_string(k) + " has no valid name");
    if (paramIndex(p.name) >= 0) throw bad("parameter '" + std::string(p.name) + "' appears twice");
    if (!(p.min_value <= p.default_value && p.default_value <= p.max_value))
      throw bad("the default of '" + std::string(p.name) + "' lies outside its range");
    params_.push_back({p.name, p.default_value, p.min_value, p.max_value});
  }
}

std::shared_ptr<Loss> Loss::open(const std::string &path, const LoadOptions &options) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0)
    throw Error("cannot open '" + path + "': " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw Error("'" + path + "' is not a regular file");
  if (std::string why = elfProblem(path, st.st_size); !why.empty())
    throw Error("'" + path + "' is not a loadable shared object: " + why);
  // dlopen() looks a name without a slash up on the library path: always give it a path.
  std::string where = path.find('/') == std::string::npos ? "./" + path : path;
  void *handle = dlopen(where.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char *e = dlerror();
    throw Error("'" + path + "' is not a loadable shared object: " + (e ? e : "dlopen failed"));
  }
  std::shared_ptr<void> owner(handle, [](void *h) { dlclose(h); });
  Functions f;
  auto sym = [&](const char *name, auto &slot) {
    void *p = dlsym(handle, name);
    if (!p) throw Error("'" + path + "' is not a compiled lossc loss: it lacks the symbol " + name);
    slot = reinterpret_cast<std::remove_reference_t<decltype(slot)>>(p);
  };
  sym("lossc_get_meta", f.getMeta);
  sym("lossc_status_message", f.statusMessage);
  sym("lossc_forward_f32", f.forwardF32);
  sym("lossc_forward_f64", f.forwardF64);
  sym("lossc_forward_backward_f32", f.forwardBackwardF32);
  sym("lossc_forward_backward_f64", f.forwardBackwardF64);
  std::shared_ptr<Loss> loss = fromFunctions(f, owner, path);
  if (!options.sourcePath.empty()) {
    std::ifstream in(options.sourcePath, std::ios::binary);
    if (!in) throw Error("cannot read the source '" + options.sourcePath + "'");
    std::stringstream text;
    text << in.rdbuf();
    std::string digest = sha256Hex(text.str());
    if (digest != loss->sha256_)
      throw Error("'" + path + "' was not compiled from '" + options.sourcePath +
                  "': its source hash is " + loss->sha256_ + ", the file's is " + digest +
                  " (recompile it)");
  }
  return loss;
}

std::shared_ptr<Loss> Loss::fromFunctions(const Functions &fns, std::shared_ptr<void> owner,
                                          const std::string &origin) {
  std::shared_ptr<Loss> loss(new Loss());
  loss->fns_ = fns;
  loss->owner_ = std::move(owner);
  loss->readMeta(origin);
  return loss;
}

int Loss::inputIndex(const std::string &name) const {
  for (size_t k = 0; k < inputs_.size(); ++k)
    if (inputs_[k].name == name) return static_cast<int>(k);
  return -1;
}

int Loss::paramIndex(const std::string &name) const {
  for (size_t k = 0; k < params_.size(); ++k)
    if (params_[k].name == name) return static_cast<int>(k);
  return -1;
}

std::vector<double>
Loss::bindParams(const std::vector<std::pair<std::string, double>> &values) const {
  std::vector<double> out;
  for (const ParamInfo &p : params_)
    out.push_back(p.defaultValue);
  for (const auto &[name, value] : values) {
    int k = paramIndex(name);
    if (k < 0) {
      std::string known;
      for (const ParamInfo &p : params_)
        known += (known.empty() ? "" : ", ") + p.name;
      throw Error("loss '" + name_ + "' has no parameter '" + name +
                  "' (it has: " + (known.empty() ? "none" : known) + ")");
    }
    const ParamInfo &p = params_[k];
    if (!(value >= p.min && value <= p.max)) {
      std::ostringstream v;
      v << value;
      throw Error("parameter '" + name + "' of loss '" + name_ + "' must lie in " + rangeText(p) +
                  ", got " + v.str());
    }
    out[k] = value;
  }
  return out;
}

void Loss::fail(int32_t status) const {
  const char *m = fns_.statusMessage(status);
  throw Error("loss '" + name_ + "' refused the call (status " + std::to_string(status) +
              "): " + (m ? m : "unknown status"));
}

int Loss::slices(int64_t n, int threads) const {
  if (batchCoupled_ || threads <= 1) return 1;
  int64_t s = std::min<int64_t>(threads, n / kMinSlice);
  return static_cast<int>(std::max<int64_t>(s, 1));
}

namespace {
template <class T> struct Kernels;
template <> struct Kernels<float> {
  static auto fwd(const Functions &f) { return f.forwardF32; }
  static auto fb(const Functions &f) { return f.forwardBackwardF32; }
};
template <> struct Kernels<double> {
  static auto fwd(const Functions &f) { return f.forwardF64; }
  static auto fb(const Functions &f) { return f.forwardBackwardF64; }
};

// Runs call(begin, count) on `parts` slices of [0, n), the first on this thread; returns the
// first nonzero status.
template <class Call> int32_t runSliced(int64_t n, int parts, Call call) {
  if (parts == 1) return call(0, n);
  std::vector<int32_t> status(parts, 0);
  std::vector<std::thread> pool;
  auto bounds = [&](int p) { return n * p / parts; };
  for (int p = 1; p < parts; ++p)
    pool.emplace_back([&, p] { status[p] = call(bounds(p), bounds(p + 1) - bounds(p)); });
  status[0] = call(0, bounds(1));
  for (std::thread &t : pool)
    t.join();
  for (int32_t s : status)
    if (s) return s;
  return 0;
}
} // namespace

template <class T>
void Loss::forward(int64_t n, const T *const *inputs, const double *params, T *out,
                   int threads) const {
  if (!inputs || !out) fail(LOSSC_STATUS_NULL_POINTER);
  size_t k = inputs_.size();
  int32_t s = runSliced(n, slices(n, threads), [&](int64_t begin, int64_t count) {
    std::vector<const T *> in(k);
    for (size_t j = 0; j < k; ++j)
      in[j] = inputs[j] ? inputs[j] + begin : nullptr;
    return Kernels<T>::fwd(fns_)(count, in.data(), params, out + begin);
  });
  if (s) fail(s);
}

template <class T>
void Loss::forwardBackward(int64_t n, const T *const *inputs, const double *params, const T *gout,
                           T *out, T *const *grads, int threads) const {
  if (!inputs) fail(LOSSC_STATUS_NULL_POINTER);
  size_t k = inputs_.size();
  int32_t s = runSliced(n, slices(n, threads), [&](int64_t begin, int64_t count) {
    std::vector<const T *> in(k);
    std::vector<T *> g(k, nullptr);
    for (size_t j = 0; j < k; ++j) {
      in[j] = inputs[j] ? inputs[j] + begin : nullptr;
      if (grads && grads[j]) g[j] = grads[j] + begin;
    }
    return Kernels<T>::fb(fns_)(count, in.data(), params, gout ? gout + begin : nullptr,
                                out ? out + begin : nullptr, grads ? g.data() : nullptr);
  });
  if (s) fail(s);
}

template void Loss::forward<float>(int64_t, const float *const *, const double *, float *,
                                   int) const;
template void Loss::forward<double>(int64_t, const double *const *, const double *, double *,
                                    int) const;
template void Loss::forwardBackward<float>(int64_t, const float *const *, const double *,
                                           const float *, float *, float *const *, int) const;
template void Loss::forwardBackward<double>(int64_t, const double *const *, const double *,
                                            const double *, double *, double *const *, int) const;

} // namespace lossc::rt
