#include "Files.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace lossc::train {

namespace fs = std::filesystem;

namespace {

[[noreturn]] void fail(const std::string &what, const std::string &path) {
  throw std::runtime_error("cannot " + what + " '" + path + "': " + std::strerror(errno));
}

void syncPath(const std::string &path, bool directory) {
  int fd = ::open(path.c_str(), (directory ? O_RDONLY | O_DIRECTORY : O_RDWR) | O_CLOEXEC);
  if (fd < 0) fail("open", path);
  int rc = ::fsync(fd);
  int saved = errno;
  ::close(fd);
  errno = saved;
  if (rc != 0) fail("fsync", path);
}

} // namespace

void writeAtomically(const std::string &path,
                     const std::function<void(const std::string &)> &write) {
  fs::path target(path);
  fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  try {
    write(tmp);
    syncPath(tmp, false);
    if (::rename(tmp.c_str(), path.c_str()) != 0) fail("rename to", path);
  } catch (...) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw;
  }
  syncPath(dir.string(), true);
}

void writeTextAtomically(const std::string &path, const std::string &text) {
  writeAtomically(path, [&](const std::string &tmp) {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    out.close();
    if (!out) fail("write", tmp);
  });
}

} // namespace lossc::train
