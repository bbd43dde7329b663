// SHA-256 (FIPS 180-4) of a byte string, as lowercase hex: the source hash that a compiled loss
// carries in its metadata and that the runtime checks against a given .loss file.
#pragma once

#include <string>
#include <string_view>

namespace lossc {

std::string sha256Hex(std::string_view data);

} // namespace lossc
