/*
 * The virtio console (spec 9, device id 3): two queues, input first, then output.
 *
 * In 2.6.24 both queues were callback-less and the guest polled.  Here the input queue asks for
 * interrupts (its avail ring leaves NO_INTERRUPT clear), so the launcher raises the queue's irq
 * when it has written typed bytes, and the guest can sleep in HALT until someone types.  Output
 * stays polled: the launcher writes it out while handling the NOTIFY, so the buffer is done by the
 * time the guest runs again.
 *
 * End of input: the launcher completes an input buffer with length 0 when its stdin reaches end
 * of file; vcon_read() then reports -1 (and keeps doing so).
 */
#ifndef VIRTIO_CONSOLE_H
#define VIRTIO_CONSOLE_H

#include <stdbool.h>

#include "virtio.h"

/* Take the console's two queues, post the input buffers, and say DRIVER_OK. */
bool vcon_init(struct virtio_device *dev);
bool vcon_ready(void);
/* The input queue (for its irq number and counters) and the output queue. */
struct virtqueue *vcon_input_queue(void);
struct virtqueue *vcon_output_queue(void);

/* Bytes typed so far, up to `max`: the count, 0 when none are waiting, -1 at end of input. */
int vcon_read(char *buf, int max);
/* Whether vcon_read() would return something other than 0. */
bool vcon_input_pending(void);

/* Queue output (it goes out when the buffer fills or at vcon_flush()). */
void vcon_write(const char *text, unsigned len);
/* Hand the queued output to the launcher and wait until it has written it. */
void vcon_flush(void);

#endif
