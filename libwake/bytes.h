/*
 * Bounds-checked byte access for the frame codecs. Every read of wire data in
 * libwake goes through a wk_cursor, every write through a wk_wcursor: a
 * codec never indexes a buffer itself, so none can run past one.
 *
 * A read that does not fit returns -EBADMSG (truncated input) and leaves the
 * cursor where it was; a write that does not fit returns -ENOSPC. Multi-byte
 * values are big-endian on the wire and host order in the API.
 */
#ifndef WAKE_BYTES_H
#define WAKE_BYTES_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct wk_cursor {
	const uint8_t *p;
	size_t len, off;
};

struct wk_wcursor {
	uint8_t *p;
	size_t len, off;
};

static inline struct wk_cursor wk_cursor(const uint8_t *p, size_t len)
{
	struct wk_cursor c = { .p = p, .len = p ? len : 0, .off = 0 };
	return c;
}

static inline struct wk_wcursor wk_wcursor(uint8_t *p, size_t len)
{
	struct wk_wcursor c = { .p = p, .len = p ? len : 0, .off = 0 };
	return c;
}

static inline size_t wk_remaining(const struct wk_cursor *c)
{
	return c->len - c->off;
}

static inline int wk_skip(struct wk_cursor *c, size_t n)
{
	if (n > c->len - c->off)
		return -EBADMSG;
	c->off += n;
	return 0;
}

static inline int wk_get_bytes(struct wk_cursor *c, void *dst, size_t n)
{
	if (n > c->len - c->off)
		return -EBADMSG;
	if (n)
		memcpy(dst, c->p + c->off, n);
	c->off += n;
	return 0;
}

static inline int wk_get_u8(struct wk_cursor *c, uint8_t *v)
{
	if (c->len - c->off < 1)
		return -EBADMSG;
	*v = c->p[c->off++];
	return 0;
}

static inline int wk_get_be16(struct wk_cursor *c, uint16_t *v)
{
	if (c->len - c->off < 2)
		return -EBADMSG;
	*v = (uint16_t)(c->p[c->off] << 8 | c->p[c->off + 1]);
	c->off += 2;
	return 0;
}

static inline int wk_get_be32(struct wk_cursor *c, uint32_t *v)
{
	if (c->len - c->off < 4)
		return -EBADMSG;
	*v = (uint32_t)c->p[c->off] << 24 | (uint32_t)c->p[c->off + 1] << 16 |
	     (uint32_t)c->p[c->off + 2] << 8 | c->p[c->off + 3];
	c->off += 4;
	return 0;
}

/* Look at the next 16-bit value without consuming it. */
static inline int wk_peek_be16(const struct wk_cursor *c, uint16_t *v)
{
	struct wk_cursor t = *c;
	return wk_get_be16(&t, v);
}

static inline int wk_put_bytes(struct wk_wcursor *c, const void *src, size_t n)
{
	if (n > c->len - c->off)
		return -ENOSPC;
	if (n)
		memcpy(c->p + c->off, src, n);
	c->off += n;
	return 0;
}

static inline int wk_put_zero(struct wk_wcursor *c, size_t n)
{
	if (n > c->len - c->off)
		return -ENOSPC;
	if (n)
		memset(c->p + c->off, 0, n);
	c->off += n;
	return 0;
}

static inline int wk_put_u8(struct wk_wcursor *c, uint8_t v)
{
	return wk_put_bytes(c, &v, 1);
}

static inline int wk_put_be16(struct wk_wcursor *c, uint16_t v)
{
	uint8_t b[2] = { (uint8_t)(v >> 8), (uint8_t)v };
	return wk_put_bytes(c, b, sizeof(b));
}

static inline int wk_put_be32(struct wk_wcursor *c, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };
	return wk_put_bytes(c, b, sizeof(b));
}

/* Overwrite a 16-bit field at an absolute offset (checksum repair). */
static inline int wk_poke_be16(struct wk_wcursor *c, size_t off, uint16_t v)
{
	if (off > c->len || c->len - off < 2)
		return -ENOSPC;
	c->p[off] = (uint8_t)(v >> 8);
	c->p[off + 1] = (uint8_t)v;
	return 0;
}

#endif
