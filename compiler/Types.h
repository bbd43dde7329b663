// Types of the typed IR: an element kind (real or bool) and a shape (a scalar, or one value per
// example of the batch, written [B]). Scalars broadcast against [B]. The Error type marks a
// value whose type could not be determined; it absorbs further errors so that one mistake is
// reported once.
#pragma once

#include <cstdint>
#include <string>

namespace lossc {

enum class Elem : uint8_t { Real, Bool, Error };
enum class Shape : uint8_t { Scalar, Batch };

struct Type {
  Elem elem = Elem::Error;
  Shape shape = Shape::Scalar;

  static Type real(Shape s = Shape::Scalar) { return {Elem::Real, s}; }
  static Type boolean(Shape s = Shape::Scalar) { return {Elem::Bool, s}; }
  static Type error() { return {Elem::Error, Shape::Scalar}; }

  bool isError() const { return elem == Elem::Error; }
  bool isReal() const { return elem == Elem::Real; }
  bool isBool() const { return elem == Elem::Bool; }
  bool isBatch() const { return shape == Shape::Batch; }
  bool operator==(const Type &o) const { return elem == o.elem && shape == o.shape; }

  std::string str() const {
    if (elem == Elem::Error) return "<error>";
    std::string s = elem == Elem::Real ? "real" : "bool";
    return shape == Shape::Batch ? s + "[B]" : s;
  }
};

// The shape of an elementwise result: [B] when any operand is [B].
inline Shape joinShapes(Shape a, Shape b) {
  return a == Shape::Batch || b == Shape::Batch ? Shape::Batch : Shape::Scalar;
}

} // namespace lossc
