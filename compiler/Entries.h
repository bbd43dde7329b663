// Which of the ABI's kernel entry points a module defines: all of them for a shared object; a
// screening JIT needs only the forward+backward ones, a trainer only its precision's.
#pragma once

namespace lossc {

enum EntryMask : unsigned {
  kForwardF32 = 1,
  kForwardF64 = 2,
  kForwardBackwardF32 = 4,
  kForwardBackwardF64 = 8,
  kAllEntries = 15,
};

} // namespace lossc
