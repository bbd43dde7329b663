// Helpers shared by the front-end unit tests: run the front end on text and look at what it
// reported.
#pragma once

#include <string>
#include <vector>

#include "Pipeline.h"

namespace lossc::test {

std::string sourceDir(); // the project root
std::string stdlibDir();

// Runs the front end on `text` as if it were the file `name` (imports resolve next to it).
std::unique_ptr<Frontend> compile(const std::string &text, const std::string &name = "test.loss");
std::unique_ptr<Frontend> compileFile(const std::string &path);

// The codes reported, in order, e.g. {"E0301", "W0201"}.
std::vector<std::string> codes(const Frontend &fe);
bool hasCode(const Frontend &fe, const std::string &code);
// The rendered text of every diagnostic.
std::string rendered(const Frontend &fe);

} // namespace lossc::test
