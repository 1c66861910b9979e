/* The WebSocket frame codec (RFC 6455), without I/O: ws.c drives it, the unit tests check it. */
#ifndef MP_MUX_WS_H
#define MP_MUX_WS_H

#include <stddef.h>
#include <stdint.h>

enum {
    MP_WS_CONT = 0x0,
    MP_WS_TEXT = 0x1,
    MP_WS_BINARY = 0x2,
    MP_WS_CLOSE = 0x8,
    MP_WS_PING = 0x9,
    MP_WS_PONG = 0xa,
};

/* Close status codes (RFC 6455 §7.4.1). */
enum {
    MP_WS_NORMAL = 1000,
    MP_WS_GOING_AWAY = 1001,
    MP_WS_PROTOCOL_ERROR = 1002,
    MP_WS_UNSUPPORTED = 1003,
    MP_WS_INVALID_DATA = 1007,
    MP_WS_POLICY = 1008,
    MP_WS_TOO_BIG = 1009,
    MP_WS_INTERNAL = 1011,
};

typedef struct mp_ws_frame {
    int fin, opcode, masked;
    uint8_t mask[4];
    uint64_t len;      /* payload bytes */
    size_t header_len; /* bytes before the payload */
} mp_ws_frame;

/* Parse the header of the frame at p. Returns 0 (f filled), MP_AGAIN (need more bytes) or
 * MP_EINVAL: reserved bits, an unknown opcode, a fragmented or long control frame, a length
 * not in its shortest form or over 2^63. */
int mp_ws_parse_header(const uint8_t *p, size_t n, mp_ws_frame *f);

/* The header of a server frame (FIN set, unmasked) into out; returns its length (2..10). */
size_t mp_ws_frame_header(uint8_t out[10], int opcode, uint64_t len);

/* XOR n bytes with the mask, starting at payload offset off. */
void mp_ws_unmask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t off);

/* Sec-WebSocket-Accept for a Sec-WebSocket-Key (which must decode to 16 bytes): 28 characters
 * and a NUL into out. 0 or MP_EINVAL. */
int mp_ws_accept_key(const char *key, size_t len, char out[29]);

#endif
