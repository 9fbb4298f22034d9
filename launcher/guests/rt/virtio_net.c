/*
 * The virtio network driver: posted receive buffers, synchronous sends.
 *
 * 2.6.24's launcher insists on the header being a descriptor of exactly 8 bytes in both
 * directions (spec 8), so each chain here is {header, frame}.  We offer no checksum or
 * segmentation offloads, so every header we send is zero and those we receive are ignored.
 */
#include "virtio_net.h"

static void post_rx(struct vnet *net, struct vnet_rx_buffer *buf)
{
	struct vbuf chain[2] = {{buf->hdr, sizeof(buf->hdr)}, {buf->frame, sizeof(buf->frame)}};
	virtqueue_add(&net->rx, chain, 0, 2, buf);
}

bool vnet_init(struct vnet *net, struct virtio_device *dev)
{
	net->dev = dev;
	net->sent = net->received = net->dropped = 0;
	virtio_add_status(dev, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	virtio_features(dev, VIRTIO_NET_F_FEATURES, 0);
	net->has_mac = virtio_config_read(dev, VIRTIO_NET_F_MAC, net->mac, sizeof(net->mac));
	if (!virtqueue_find(dev, &net->rx, true) || !virtqueue_find(dev, &net->tx, false)) {
		virtio_add_status(dev, VIRTIO_CONFIG_S_FAILED);
		return false;
	}
	for (int i = 0; i < VNET_RX_BUFFERS; i++)
		post_rx(net, &net->rx_buffers[i]);
	virtio_add_status(dev, VIRTIO_CONFIG_S_DRIVER_OK);
	virtqueue_kick(&net->rx);
	return true;
}

bool vnet_send(struct vnet *net, const void *frame, uint32_t len)
{
	/* The launcher insists the header is exactly 8 bytes and 2-aligned (spec 8). */
	static const uint8_t hdr[VIRTIO_NET_HDR_BYTES] __attribute__((aligned(2)));
	struct vbuf chain[2] = {{hdr, sizeof(hdr)}, {frame, len}};
	uint32_t used_len;

	if (len == 0 || len > VNET_FRAME_MAX || !virtqueue_add(&net->tx, chain, 2, 0, (void *)frame))
		return false;
	virtqueue_kick(&net->tx);
	/* The frame is the caller's: wait until the launcher has passed it on. */
	while (!virtqueue_get(&net->tx, &used_len))
		hcall(LHCALL_FLUSH_ASYNC, 0, 0, 0);
	net->sent++;
	return true;
}

bool vnet_rx_pending(struct vnet *net)
{
	return virtqueue_has_used(&net->rx);
}

uint32_t vnet_recv(struct vnet *net, void *frame, uint32_t max)
{
	uint32_t len;
	struct vnet_rx_buffer *buf;

	while ((buf = virtqueue_get(&net->rx, &len))) {
		uint32_t frame_len = len > VIRTIO_NET_HDR_BYTES ? len - VIRTIO_NET_HDR_BYTES : 0;
		uint32_t n = frame_len < max ? frame_len : max;
		uint8_t *dst = frame;
		for (uint32_t i = 0; i < n; i++)
			dst[i] = buf->frame[i];
		post_rx(net, buf);
		virtqueue_kick(&net->rx);
		if (frame_len == 0) {
			net->dropped++;
			continue;
		}
		net->received++;
		return n;
	}
	return 0;
}
