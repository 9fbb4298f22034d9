/* rt_library: the runtime's own helpers behave like their C library namesakes: the printf
 * conversions, truncation and return value of snprintf, and memmove over overlaps. */
#define GUEST "rt_library"
#include "check.h"

static char buf[64];

#define FORMATS(want, ...)                                                                         \
	do {                                                                                       \
		int n = snprintf(buf, sizeof(buf), __VA_ARGS__);                                   \
		CHECK(strcmp(buf, want) == 0 && n == (int)strlen(want), "%s gave \"%s\" (%d)",     \
		      #__VA_ARGS__, buf, n);                                                       \
	} while (0)

int main(void)
{
	FORMATS("42 -7 0", "%d %i %u", 42, -7, 0u);
	FORMATS("-2147483648 4294967295", "%d %u", (int)0x80000000, 0xFFFFFFFFu);
	FORMATS("ff FF 0xff 0x0", "%x %X %#x %#x", 255u, 255u, 255u, 0u);
	FORMATS("0x00c0ffee|  c0ffee|c0ffee  ", "%#010x|%8x|%-8x", 0xC0FFEEu, 0xC0FFEEu, 0xC0FFEEu);
	FORMATS("-0042|  -42|-42  ", "%05d|%5d|%-5d", -42, -42, -42);
	FORMATS("18446744073709551615 -9000000000", "%llu %lld", ~0ull, -9000000000ll);
	FORMATS("ab|  x|abc|100%", "%s|%3c|%.3s|100%%", "ab", 'x', "abcdef");
	FORMATS("0xc0100000", "%p", (void *)0xC0100000);

	int n = snprintf(buf, 5, "%s", "truncated");
	CHECK(n == 9 && strcmp(buf, "trun") == 0, "truncation gave \"%s\" (%d)", buf, n);

	char overlap[16] = "0123456789";
	memmove(overlap + 2, overlap, 8);
	CHECK(memcmp(overlap, "0101234567", 10) == 0, "memmove up gave %.10s", overlap);
	memmove(overlap, overlap + 2, 8);
	CHECK(memcmp(overlap, "0123456767", 10) == 0, "memmove down gave %.10s", overlap);
	pass();
	return 0;
}
