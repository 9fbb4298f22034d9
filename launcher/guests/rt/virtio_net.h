/*
 * The virtio network device (spec 9, device id 1): a receive queue, then a send queue; every
 * frame travels behind an 8-byte virtio_net_hdr in a descriptor of its own.
 *
 * Receive buffers stay posted; the launcher fills one per incoming frame and raises the receive
 * queue's irq.  Sending is synchronous: the launcher passes the frame on while handling the NOTIFY.
 */
#ifndef VIRTIO_NET_H
#define VIRTIO_NET_H

#include <stdbool.h>
#include <stdint.h>

#include "virtio.h"

#define VNET_FRAME_MAX 1514 /* an Ethernet frame without its FCS */
#define VNET_RX_BUFFERS 16

struct vnet_rx_buffer {
	uint8_t hdr[VIRTIO_NET_HDR_BYTES] __attribute__((aligned(2))); /* spec 8: 2-aligned */
	uint8_t frame[VNET_FRAME_MAX];
};

struct vnet {
	struct virtio_device *dev;
	struct virtqueue rx, tx;
	uint8_t mac[6];
	bool has_mac;
	struct vnet_rx_buffer rx_buffers[VNET_RX_BUFFERS];
	uint32_t sent, received, dropped;
};

/* Read the MAC, take both queues, post the receive buffers and say DRIVER_OK. */
bool vnet_init(struct vnet *net, struct virtio_device *dev);
/* Send one frame (destination, source, type, payload); false if it did not go out. */
bool vnet_send(struct vnet *net, const void *frame, uint32_t len);
/* Copy the next received frame into `frame` (up to `max` bytes): its length, or 0 if none. */
uint32_t vnet_recv(struct vnet *net, void *frame, uint32_t max);
bool vnet_rx_pending(struct vnet *net);

#endif
