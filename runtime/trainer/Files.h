// Writing files so that a crash or a kill at any moment leaves either the old file or the new
// one, never a torn one: write a temporary file beside the target, fsync it, rename it over the
// target, fsync the directory.
#pragma once

#include <functional>
#include <string>

namespace lossc::train {

// Calls write(tmp) to produce a temporary file, then moves it into place durably. Throws
// std::runtime_error naming the path on any failure (the temporary file is removed).
void writeAtomically(const std::string &path,
                     const std::function<void(const std::string &)> &write);

// The same for text in memory.
void writeTextAtomically(const std::string &path, const std::string &text);

} // namespace lossc::train
