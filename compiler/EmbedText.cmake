# cmake -DINPUT=file -DOUTPUT=file.inc -P EmbedText.cmake
# Writes `static const char kLanguageReference[]` holding INPUT's bytes, as hex, so that no
# character of the text can break the C++ literal.
file(READ ${INPUT} content HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," content "${content}")
file(WRITE ${OUTPUT} "// Generated from ${INPUT}; do not edit.\nstatic const char kLanguageReference[] = {${content} 0x00};\n")
