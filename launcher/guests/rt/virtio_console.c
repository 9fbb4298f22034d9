/*
 * The virtio console driver: typed bytes in by interrupt, output out by polling.
 *
 * Input: a few buffers stay posted on the input queue.  The launcher fills one per read of its
 * stdin, raises the queue's irq and (if it ran out of buffers) stops watching stdin until we kick
 * the queue again, which we do each time a buffer has been consumed and re-posted.
 *
 * Output is collected in one buffer and sent as a single descriptor at vcon_flush() (or when it
 * fills), so a line of printf() costs one NOTIFY, not one per call.
 */
#include "virtio_console.h"

#define INPUT_BUFFERS 4
#define INPUT_BUFFER_BYTES 256
#define OUTPUT_BUFFER_BYTES 2048

static struct virtqueue in_vq, out_vq;
static bool ready;

/* Each input buffer starts on a 256-byte boundary: after its console reaches end of input, the
 * 2.6.24 launcher takes a kick of the input queue for an early-console write and prints the
 * ring's first bytes as a string (its first descriptor's address, low byte first), which is then
 * empty instead of noise. */
static char input[INPUT_BUFFERS][INPUT_BUFFER_BYTES] __attribute__((aligned(256)));
static char *reading;      /* the input buffer being consumed, or 0 */
static uint32_t read_len;  /* bytes the launcher put in it */
static uint32_t read_off;  /* bytes of it already returned */
static bool end_of_input;

static char output[OUTPUT_BUFFER_BYTES];
static unsigned output_len;

static void post_input(char *buf)
{
	struct vbuf chain = {buf, INPUT_BUFFER_BYTES};
	virtqueue_add(&in_vq, &chain, 0, 1, buf);
}

bool vcon_init(struct virtio_device *dev)
{
	virtio_add_status(dev, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	if (!virtqueue_find(dev, &in_vq, true) || !virtqueue_find(dev, &out_vq, false)) {
		virtio_add_status(dev, VIRTIO_CONFIG_S_FAILED);
		return false;
	}
	for (int i = 0; i < INPUT_BUFFERS; i++)
		post_input(input[i]);
	virtio_add_status(dev, VIRTIO_CONFIG_S_DRIVER_OK);
	virtqueue_kick(&in_vq);
	ready = true;
	return true;
}

bool vcon_ready(void)
{
	return ready;
}

struct virtqueue *vcon_input_queue(void)
{
	return &in_vq;
}

struct virtqueue *vcon_output_queue(void)
{
	return &out_vq;
}

/* Make `reading` the next filled input buffer, if there is one. */
static bool next_input(void)
{
	while (!reading && !end_of_input) {
		uint32_t len;
		char *buf = virtqueue_get(&in_vq, &len);
		if (!buf)
			return false;
		if (len == 0) {
			/* The launcher's agreed sign that its stdin reached end of file. */
			end_of_input = true;
			return false;
		}
		reading = buf;
		read_len = len < INPUT_BUFFER_BYTES ? len : INPUT_BUFFER_BYTES;
		read_off = 0;
	}
	return reading != 0;
}

bool vcon_input_pending(void)
{
	return ready && (next_input() || end_of_input);
}

int vcon_read(char *buf, int max)
{
	int got = 0;

	if (!ready)
		return 0;
	while (got < max && next_input()) {
		while (got < max && read_off < read_len)
			buf[got++] = reading[read_off++];
		if (read_off == read_len) {
			/* Consumed: post it again, and the kick tells the launcher to watch stdin again. */
			post_input(reading);
			virtqueue_kick(&in_vq);
			reading = 0;
		}
	}
	if (got == 0 && end_of_input)
		return -1;
	return got;
}

void vcon_flush(void)
{
	struct vbuf chain = {output, output_len};
	uint32_t len;

	if (!ready || output_len == 0)
		return;
	if (!virtqueue_add(&out_vq, &chain, 1, 0, output))
		return;
	virtqueue_kick(&out_vq);
	/* The launcher writes the buffer while handling our NOTIFY; should it ever defer that,
	 * enter the Host again until it is done (the buffer is reused right after). */
	while (!virtqueue_get(&out_vq, &len))
		hcall(LHCALL_FLUSH_ASYNC, 0, 0, 0);
	output_len = 0;
}

void vcon_write(const char *text, unsigned len)
{
	while (len > 0) {
		if (output_len == OUTPUT_BUFFER_BYTES)
			vcon_flush();
		unsigned room = OUTPUT_BUFFER_BYTES - output_len;
		unsigned n = len < room ? len : room;
		for (unsigned i = 0; i < n; i++)
			output[output_len + i] = text[i];
		output_len += n;
		text += n;
		len -= n;
	}
}
