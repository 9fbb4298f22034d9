/*
 * console.c: the early console and a small printf.
 *
 * The early console is Linux's lguest early_put_chars(): NOTIFY with the physical address of a
 * NUL-terminated string; the launcher's read returns that address and it prints the string
 * (spec 8 NOTIFY, spec 10 step 9).  The guest does not run again until the launcher reads
 * once more, so one static buffer is enough; interrupts are held off while it is in use so a
 * handler that prints cannot scribble over a half-formatted line.
 *
 * panic() formats into exactly CRASH_MESSAGE_BYTES, which is what CRASH reads.
 */
#include "lguest.h"

void early_puts(const char *s)
{
	lguest_notify(__pa(s));
}

struct sink {
	char *buf;
	size_t size;
	size_t len; /* what would have been written, as C's snprintf counts */
};

static void put(struct sink *out, char c)
{
	if (out->len + 1 < out->size)
		out->buf[out->len] = c;
	out->len++;
}

static void put_padded(struct sink *out, const char *s, size_t n, int width, bool left, char pad)
{
	int fill = width > (int)n ? width - (int)n : 0;

	if (!left)
		while (fill-- > 0)
			put(out, pad);
	while (n--)
		put(out, *s++);
	if (left)
		while (fill-- > 0)
			put(out, ' ');
}

static void put_number(struct sink *out, unsigned long long value, unsigned int base, bool upper,
		       bool negative, const char *prefix, int width, bool left, char pad)
{
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	char reversed[24];
	int n = 0;

	do {
		reversed[n++] = digits[value % base];
		value /= base;
	} while (value);
	int lead = (negative ? 1 : 0) + (int)strlen(prefix);
	int fill = width > n + lead ? width - n - lead : 0;

	if (!left && pad == ' ')
		for (; fill > 0; fill--)
			put(out, ' ');
	if (negative)
		put(out, '-');
	while (*prefix)
		put(out, *prefix++);
	if (!left)
		for (; fill > 0; fill--)
			put(out, '0');
	while (n)
		put(out, reversed[--n]);
	for (; fill > 0; fill--)
		put(out, ' ');
}

int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
	struct sink out = {buf, size, 0};

	for (; *fmt; fmt++) {
		if (*fmt != '%') {
			put(&out, *fmt);
			continue;
		}
		bool left = false, alternate = false;
		char pad = ' ';
		int width = 0, longs = 0;
		for (;; fmt++) {
			if (fmt[1] == '-')
				left = true;
			else if (fmt[1] == '0')
				pad = '0';
			else if (fmt[1] == '#')
				alternate = true;
			else
				break;
		}
		while (fmt[1] >= '0' && fmt[1] <= '9')
			width = width * 10 + (*++fmt - '0');
		int precision = -1; /* for %s: at most this many characters */
		if (fmt[1] == '.') {
			fmt++;
			precision = 0;
			while (fmt[1] >= '0' && fmt[1] <= '9')
				precision = precision * 10 + (*++fmt - '0');
		}
		while (fmt[1] == 'l') {
			longs++;
			fmt++;
		}
		switch (*++fmt) {
		case 'd':
		case 'i': {
			long long v = longs > 1 ? va_arg(ap, long long) : va_arg(ap, long);
			unsigned long long magnitude = v < 0 ? -(unsigned long long)v : (unsigned long long)v;
			put_number(&out, magnitude, 10, false, v < 0, "", width, left, pad);
			break;
		}
		case 'u':
		case 'x':
		case 'X': {
			unsigned long long v = longs > 1 ? va_arg(ap, unsigned long long)
							 : va_arg(ap, unsigned long);
			unsigned int base = *fmt == 'u' ? 10 : 16;
			const char *prefix = alternate && base == 16 ? (*fmt == 'X' ? "0X" : "0x") : "";
			put_number(&out, v, base, *fmt == 'X', false, prefix, width, left, pad);
			break;
		}
		case 'p':
			put_number(&out, (uint32_t)va_arg(ap, void *), 16, false, false, "0x", width,
				   left, pad);
			break;
		case 's': {
			const char *s = va_arg(ap, const char *);
			if (!s)
				s = "(null)";
			size_t n = 0;
			while (s[n] && (precision < 0 || n < (size_t)precision))
				n++;
			put_padded(&out, s, n, width, left, ' ');
			break;
		}
		case 'c': {
			char c = (char)va_arg(ap, int);
			put_padded(&out, &c, 1, width, left, ' ');
			break;
		}
		case '%':
			put(&out, '%');
			break;
		case '\0':
			fmt--; /* a lone % at the end: stop at the NUL */
			break;
		default:
			put(&out, '%');
			put(&out, *fmt);
			break;
		}
	}
	if (size)
		buf[out.len < size ? out.len : size - 1] = '\0';
	return (int)out.len;
}

int snprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n;
}

int printk(const char *fmt, ...)
{
	static char line[512];
	uint32_t flags = irq_save();
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	early_puts(line);
	irq_restore(flags);
	return n;
}

_Noreturn void panic(const char *fmt, ...)
{
	static char reason[CRASH_MESSAGE_BYTES];
	va_list ap;

	irq_disable();
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	lguest_crash(reason);
}
