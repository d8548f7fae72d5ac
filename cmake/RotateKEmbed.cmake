# cmake -DIN=file -DOUT=file.c -DSYMBOL=name -P RotateKEmbed.cmake
# Writes the bytes of IN as `const unsigned char SYMBOL[]` plus `SYMBOL_size`, NUL-terminated
# so text sources can be passed straight to clCreateProgramWithSource.
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" n)
math(EXPR nbytes "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
string(REGEX REPLACE "((0x..,){16})" "\\1\n" body "${body}")
file(WRITE "${OUT}" "/* generated from ${IN}; do not edit */\n#include <stddef.h>\n"
  "const unsigned char ${SYMBOL}[] = {\n${body}0x00};\n"
  "const size_t ${SYMBOL}_size = ${nbytes};\n")
