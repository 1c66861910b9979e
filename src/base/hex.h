/* One hexadecimal digit's value: percent-decoding (HTTP paths, the admin protocol) and the
 * TLS key log both need it. */
#ifndef MP_BASE_HEX_H
#define MP_BASE_HEX_H

/* 0..15, or -1 when ch is no hex digit (either case). */
static inline int
mp_hex_digit(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

#endif
