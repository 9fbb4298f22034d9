/*
 * console.c: where the guest's text goes, and the line editor the shell reads with.
 *
 * Until the virtio console is up, output goes through the early console (a NOTIFY per string,
 * which the launcher prints).  After that it is queued on the virtio console and flushed at the
 * end of each kprintf() that ends a line, and before the guest sleeps, so a command's output
 * costs a NOTIFY per line rather than per character.
 *
 * Input arrives by interrupt: the event loop sleeps in HALT and the console's irq wakes it.
 */
#include "os.h"
#include "virtio_console.h"

#define KPRINTF_BYTES 512

void con_write(const char *text, unsigned len)
{
	if (vcon_ready()) {
		vcon_write(text, len);
		return;
	}
	/* The early console takes NUL-terminated strings: send it in bounded pieces. */
	char piece[128];
	while (len > 0) {
		unsigned n = len < sizeof(piece) - 1 ? len : sizeof(piece) - 1;
		memcpy(piece, text, n);
		piece[n] = 0;
		early_puts(piece);
		text += n;
		len -= n;
	}
}

void con_flush(void)
{
	vcon_flush();
}

static int vkprintf(const char *fmt, va_list ap)
{
	char buf[KPRINTF_BYTES];
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);

	if (n > (int)sizeof(buf) - 1)
		n = sizeof(buf) - 1;
	con_write(buf, (unsigned)n);
	if (n > 0 && buf[n - 1] == '\n')
		con_flush();
	return n;
}

int kprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vkprintf(fmt, ap);
	va_end(ap);
	return n;
}

int boot_msg(const char *fmt, ...)
{
	va_list ap;
	int n = 0;

	if (options.quiet)
		return 0;
	va_start(ap, fmt);
	n = vkprintf(fmt, ap);
	va_end(ap);
	return n;
}

void print_quoted(const uint8_t *data, uint32_t len)
{
	char shown[64];
	uint32_t n = 0;

	while (len > 0 && data[len - 1] == 0)
		len--;
	shown[n++] = '"';
	for (uint32_t i = 0; i < len; i++) {
		if (n == sizeof(shown)) {
			con_write(shown, n);
			n = 0;
		}
		shown[n++] = data[i] >= 0x20 && data[i] < 0x7F ? (char)data[i] : '.';
	}
	if (n == sizeof(shown)) {
		con_write(shown, n);
		n = 0;
	}
	shown[n++] = '"';
	con_write(shown, n);
}
